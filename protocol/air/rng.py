"""SplitMix64, the counter-based random numbers of the air: numba kernels and seed mixing.

The radio draws every link success from one SplitMix64 stream per ``(seed, round_no, ...)``
(see :func:`stream_seed`), so a round's realization is a pure function of its seed parts. The
kernels are ``inline="always"``: they compile into the numba kernels that call them.
"""

from __future__ import annotations

import numpy as np
from protocol.air.jit import njit

_MASK64 = (1 << 64) - 1


@njit(cache=True, inline="always")
def rng_next(state: np.ndarray) -> np.uint64:
    """SplitMix64 step on ``state`` (uint64[1], updated in place)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z: np.uint64 = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def rng_uniform(state: np.ndarray) -> float:
    """Uniform float in [0, 1) with 53 random bits."""
    return float(rng_next(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def _mix64(z: int) -> int:
    """One SplitMix64 finalization of ``z`` (Python ints, 64-bit wrap-around)."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_seed(*parts: int) -> int:
    """A 64-bit seed from integers (e.g. ``(seed, round_no, protocol)``), well mixed."""
    h = 0x6A09E667F3BCC908
    for p in parts:
        h = _mix64(h ^ (int(p) & _MASK64))
    return h
