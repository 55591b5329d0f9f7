"""Plain JSON/msgpack values from numpy scalars, arrays and paths (for records at the edge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plain_values(value: Any) -> Any:
    """A JSON- and msgpack-safe copy: numpy scalars and arrays to Python, paths to str."""
    if isinstance(value, dict):
        return {str(k): plain_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_values(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value
