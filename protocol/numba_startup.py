"""Load numba's array support without its BLAS probe: ~0.1 s less per process that loads a kernel.

When numba first compiles or loads a kernel, its CPU target imports ``numba.np.arraymath``,
which imports ``scipy.linalg.cython_blas`` right away (~0.1 s with scipy installed: most of
``scipy.linalg``) only to decide whether ``np.dot``-style calls may use BLAS (numba's
``_HAVE_BLAS``; without scipy it is False and numba works on). No kernel of this project uses
BLAS (tests/unit/test_numba_startup.py checks that no kernel source names a BLAS-backed
function), so the zygote (every node) and the launcher load it with that import held back
(:func:`load_array_support`); a kernel that did call ``np.dot`` would still compile (numba's
linear algebra imports scipy itself when it types such a call).
"""

from __future__ import annotations

import sys

#: The module numba's probe imports, and the one whose import runs the probe.
BLAS_MODULE = "scipy.linalg.cython_blas"
ARRAYMATH = "numba.np.arraymath"


def load_array_support() -> bool:
    """Import ``numba.np.arraymath`` with :data:`BLAS_MODULE` unavailable for that moment
    (``None`` in ``sys.modules``: Python's documented way to make an import fail at once).
    Returns False when there was nothing to do (numba's array support already loaded, or
    scipy's BLAS already imported, so that the probe costs nothing)."""
    if ARRAYMATH in sys.modules or BLAS_MODULE in sys.modules:
        return False
    sys.modules[BLAS_MODULE] = None  # type: ignore[assignment]
    try:
        __import__(ARRAYMATH)
    except ImportError:  # another numba layout: load as numba does, the probe included
        return False
    finally:
        del sys.modules[BLAS_MODULE]
    return True
