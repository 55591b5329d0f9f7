"""Content digest of a set of named arrays: checkpoints refuse files whose bytes changed.

(``np.load`` on a zip reads each array with an exact length and may never reach the point
where zipfile checks the CRC, so a flipped byte could load silently without this.)
"""

from __future__ import annotations

import hashlib

import numpy as np


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``arrays`` (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
