"""protocol/numba_startup.py: numba's array support loads without scipy's BLAS, and nothing
of this project needs what that changes (numba's BLAS path of ``np.convolve``/``np.correlate``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_array_support_loads_without_scipy_linalg_and_blas_stays_importable() -> None:
    out = _python(
        "import sys\n"
        "from protocol.numba_startup import load_array_support\n"
        "print(load_array_support(), 'scipy.linalg' in sys.modules, 'numba.np.arraymath' in sys.modules)\n"
        "print(load_array_support())\n"  # the second time: nothing to do
        "import scipy.linalg.cython_blas\n"  # not left blocked
        "print('blas ok')\n")
    assert out.split("\n")[:3] == ["True False True", "False", "blas ok"]


def test_numba_linear_algebra_still_compiles_after_it() -> None:
    out = _python(
        "import numpy as np\n"
        "from protocol.numba_startup import load_array_support\n"
        "load_array_support()\n"
        "import numba\n"
        "f = numba.njit(lambda a, b: np.dot(a, b))\n"
        "print(f(np.arange(3.0), np.ones(3)))\n")
    assert out.strip() == "3.0"


def test_no_source_of_the_project_uses_what_numbas_blas_flag_changes() -> None:
    # Without the probe numba's np.convolve/np.correlate take their BLAS-free path: a kernel
    # using them would compute (and cache) other sums in the zygote than elsewhere.
    pattern = re.compile(r"\b(convolve|correlate)\s*\(")
    found = [f"{p.relative_to(ROOT)}:{n}" for package in ("node", "protocol", "coordinator")
             for p in sorted((ROOT / package).rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
