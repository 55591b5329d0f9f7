"""The cycles of the ridge head's solve (its RAM: protocol/config/ridge_ram.py).

Per alpha of the grid one Cholesky factorisation (``n^3 / 6`` multiply-adds), the diagonal
of its inverse (``n^3 / 6``) and the solve of the ``C`` right-hand sides (``2 n^2 C``), plus
centring (``3 n^2``), all float64. The Cortex-M4F's FPU is single precision only (FPv4-SP:
Arm Cortex-M4 Technical Reference Manual, "Floating Point Unit"), so a float64 multiply-add
is two calls into the compiler's runtime library (``__aeabi_dmul``, ``__aeabi_dadd``):
:data:`DOUBLE_MAC_CYCLES` is our own estimate of the pair, not a measurement.
"""

from __future__ import annotations

from node.ml.ridge import RIDGE_ALPHAS

__all__ = ["DOUBLE_MAC_CYCLES", "ridge_solve_cycles"]

#: Cycles of one float64 multiply-add in software on the Cortex-M4F (our estimate).
DOUBLE_MAC_CYCLES = 60.0


def ridge_solve_cycles(n_train: int, n_classes: int, n_alphas: int = len(RIDGE_ALPHAS),
                       double_mac: float = DOUBLE_MAC_CYCLES) -> float:
    """Cycles of the leave-one-out solve (module docstring)."""
    n = float(n_train)
    per_alpha = n ** 3 / 6 + n ** 3 / 6 + 2 * n * n * n_classes
    return (n_alphas * per_alpha + 3 * n * n) * double_mac
