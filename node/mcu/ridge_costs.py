"""The ridge head's MCU costs: its RAM ledger and the cycles of its solve.

RAM (:func:`ridge_ledger`): the SGD ledger (``node.mcu.memory.ledger``) without what only
SGD needs (gradient accumulators, Adam moments), plus what the ridge head keeps:

* the summed Gram matrix, lower triangle packed, float32: ``4 n (n + 1) / 2`` B;
* the Cholesky factor of one alpha, packed, float64: ``8 n (n + 1) / 2`` B (float64 because
  small alphas leave ``K + alpha I`` too ill-conditioned for float32; our choice);
* the Gram block, this device's features of ``C`` samples: ``4 C F_d`` B;
* the dual coefficients ``A``, float32: ``4 n C`` B; one training label per sample, int16.

The scaler's calibration accumulators overlay the Cholesky factor (both never live at once).

Cycles (:func:`ridge_solve_cycles`): per alpha of the grid one Cholesky factorisation
(``n^3 / 6`` multiply-adds), the diagonal of its inverse (``n^3 / 6``) and the solve of the
``C`` right-hand sides (``2 n^2 C``), plus centring (``3 n^2``), all float64. The
Cortex-M4F's FPU is single precision only (FPv4-SP: Arm Cortex-M4 Technical Reference
Manual, "Floating Point Unit"), so a float64 multiply-add is two calls into the compiler's
runtime library (``__aeabi_dmul``, ``__aeabi_dadd``): :data:`DOUBLE_MAC_CYCLES` is our own
estimate of the pair, not a measurement.
"""

from __future__ import annotations

from node.mcu.memory import FLOAT32_BYTES, Ledger, RamBudgetExceeded, ledger
from node.ml.ridge import RIDGE_ALPHAS
from protocol.config.model import ModelConfig

__all__ = ["DOUBLE_MAC_CYCLES", "check_ridge", "ridge_ledger", "ridge_solve_cycles"]

#: Cycles of one float64 multiply-add in software on the Cortex-M4F (our estimate).
DOUBLE_MAC_CYCLES = 60.0
FLOAT64_BYTES = 8
INT16_BYTES = 2

#: SGD-only buffers the ridge head does not have.
_SGD_ONLY = ("gradient accumulators", "Adam m, v (float32)", "Adam m, v (uint8)", "Adam block scales",
             "scaler calibration (beyond overlay)")


def _triangle(n: int) -> int:
    return n * (n + 1) // 2


def ridge_ledger(cfg: ModelConfig, n_devices: int, series_length: int, n_classes: int, n_train: int,
                 device: int = 0) -> Ledger:
    """The RAM ledger of ``device`` with the ridge head (module docstring)."""
    base = ledger(cfg, n_devices, series_length, n_classes, device=device)
    e = {k: v for k, v in base.entries.items() if k not in _SGD_ONLY}
    e["Gram matrix (float32 triangle)"] = _triangle(n_train) * FLOAT32_BYTES
    factor = _triangle(n_train) * FLOAT64_BYTES
    e["Cholesky factor (float64 triangle)"] = factor
    if cfg.feature_scaling:  # float64 mean and M2 per feature, overlaid on the factor
        e["scaler calibration (beyond overlay)"] = max(0, 16 * base.n_features - factor)
    e["Gram block features"] = n_classes * base.n_features * FLOAT32_BYTES
    e["dual coefficients A"] = n_train * n_classes * FLOAT32_BYTES
    e["training labels"] = n_train * INT16_BYTES
    return Ledger(device=base.device, n_devices=base.n_devices, n_kernels=base.n_kernels,
                  n_features=base.n_features, entries=e, total_bytes=sum(e.values()))


def ridge_solve_cycles(n_train: int, n_classes: int, n_alphas: int = len(RIDGE_ALPHAS),
                       double_mac: float = DOUBLE_MAC_CYCLES) -> float:
    """Cycles of the leave-one-out solve (module docstring)."""
    n = float(n_train)
    per_alpha = n ** 3 / 6 + n ** 3 / 6 + 2 * n * n * n_classes
    return (n_alphas * per_alpha + 3 * n * n) * double_mac


def check_ridge(led: Ledger, n_train: int, budget_bytes: int) -> None:
    """Raise :class:`~node.mcu.memory.RamBudgetExceeded` if the ridge head's ``led`` does not
    fit, naming the fix (the Gram matrix grows with n_train^2, not with the features)."""
    over = led.total_bytes - budget_bytes
    if over <= 0:
        return
    gram = led.entries["Gram matrix (float32 triangle)"] + led.entries["Cholesky factor (float64 triangle)"]
    raise RamBudgetExceeded(
        f"device {led.device} of {led.n_devices} needs {led.total_bytes:,d} B of RAM with the ridge head, "
        f"{over:,d} B ({over / 1024:.1f} KiB) over the budget of {budget_bytes:,d} B: the Gram matrix of "
        f"{n_train} training samples and its Cholesky factor take {gram:,d} B. To fit: use --head sgd "
        "(or --head auto, which picks it), or a smaller training split."
    )
