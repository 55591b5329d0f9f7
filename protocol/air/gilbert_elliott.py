"""The Gilbert–Elliott burst model: per-link two-state Markov chains advanced once per slot.

Chain parameters (:class:`GEParams`): ``p`` good -> bad and ``r`` bad -> good per slot of air
time, ``loss_good`` / ``loss_bad`` the drop probability in each state. Stationary bad share
``p / (p + r)``, mean bad burst ``1 / r`` slots. For the radio, the chains of a round are
packed into flat arrays (:class:`GEArrays`, chain ``k`` is link ``src[k] -> dst[k]``), which
the numba kernels :func:`ge_advance` and :func:`link_prob` read; :func:`sample_links_kernel`
realizes every link in every slot of a round with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from protocol.air.jit import njit

from protocol.air.rng import rng_uniform


@dataclass(frozen=True)
class GEParams:
    """One chain's parameters: ``p`` good -> bad, ``r`` bad -> good (per slot), drop probabilities."""

    p: float
    r: float
    loss_good: float
    loss_bad: float


@dataclass(frozen=True, eq=False)
class GEArrays:
    """The Gilbert–Elliott links of a round, compact: chain ``k`` is link ``src[k] -> dst[k]``."""

    index: np.ndarray  # int64 [n, n]: chain of link a->b, -1 if none
    src: np.ndarray  # int64 [K]
    dst: np.ndarray  # int64 [K]
    p_gb: np.ndarray  # float64 [K]
    r_bg: np.ndarray  # float64 [K]
    loss_good: np.ndarray  # float64 [K]
    loss_bad: np.ndarray  # float64 [K]
    bad: np.ndarray  # bool [K]: state at the start of the round (a copy; the radio mutates it)


# ------------------------------------------------------------------ chain arrays
def ge_chain_arrays(base_prr: np.ndarray, ge_link: dict[tuple[int, int], GEParams],
                    ge_global: GEParams | None) -> tuple[np.ndarray, ...]:
    """The static part of :class:`GEArrays` (everything but ``bad``) for the links of ``base_prr``.

    Every link with PRR > 0 gets its own parameters (``ge_link``) or else ``ge_global``; links
    with neither have no chain. Returns ``(index, src, dst, p_gb, r_bg, loss_good, loss_bad)``.
    """
    n = base_prr.shape[0]
    pairs: list[tuple[int, int]] = []
    params: list[GEParams] = []
    a_idx, b_idx = np.nonzero(base_prr > 0)
    for a, b in zip(a_idx.tolist(), b_idx.tolist()):
        g = ge_link.get((a, b), ge_global)
        if g is not None:
            pairs.append((a, b))
            params.append(g)
    k = len(pairs)
    index = np.full((n, n), -1, dtype=np.int64)
    src = np.array([a for a, _ in pairs], dtype=np.int64)
    dst = np.array([b for _, b in pairs], dtype=np.int64)
    if k:
        index[src, dst] = np.arange(k)
    return (
        index, src, dst,
        np.array([g.p for g in params], dtype=np.float64),
        np.array([g.r for g in params], dtype=np.float64),
        np.array([g.loss_good for g in params], dtype=np.float64),
        np.array([g.loss_bad for g in params], dtype=np.float64),
    )


def ge_arrays_with_states(chains: tuple[np.ndarray, ...],
                          ge_state: dict[tuple[int, int], bool]) -> GEArrays:
    """:class:`GEArrays` from :func:`ge_chain_arrays`' output and the stored chain states
    (a link without a stored state starts good)."""
    index, src, dst, p, r, lg, lb = chains
    bad = np.array([ge_state.get((a, b), False) for a, b in zip(src.tolist(), dst.tolist())],
                   dtype=np.bool_)
    return GEArrays(index, src, dst, p, r, lg, lb, bad)


# ------------------------------------------------------------------ kernels (numba)
@njit(cache=True, inline="always")
def ge_advance(bad: np.ndarray, p_gb: np.ndarray, r_bg: np.ndarray, rng: np.ndarray) -> None:
    """Advance every Gilbert–Elliott chain by one slot (one uniform draw per chain)."""
    for k in range(bad.shape[0]):
        u = rng_uniform(rng)
        if bad[k]:
            if u < r_bg[k]:
                bad[k] = False
        elif u < p_gb[k]:
            bad[k] = True


@njit(cache=True, inline="always")
def link_prob(a: int, b: int, prr: np.ndarray, ge_index: np.ndarray, ge_bad: np.ndarray,
              ge_loss_good: np.ndarray, ge_loss_bad: np.ndarray) -> float:
    """Success probability of ``a -> b`` in the current slot (static PRR x GE state)."""
    p: float = prr[a, b]
    k = ge_index[a, b]
    if k >= 0 and p > 0.0:
        p *= 1.0 - (ge_loss_bad[k] if ge_bad[k] else ge_loss_good[k])
    return p


@njit(cache=True)
def sample_links_kernel(prr: np.ndarray, ge_index: np.ndarray, ge_bad: np.ndarray,
                        ge_p: np.ndarray, ge_r: np.ndarray, ge_lg: np.ndarray, ge_lb: np.ndarray,
                        n_slots: int, seed: np.uint64) -> np.ndarray:
    """bool [n_slots, n, n]: every link realized in every slot (``ge_bad`` advanced in place)."""
    n = prr.shape[0]
    out = np.zeros((n_slots, n, n), dtype=np.bool_)
    rng = np.empty(1, dtype=np.uint64)
    rng[0] = seed
    for s in range(n_slots):
        for a in range(n):
            for b in range(n):
                if prr[a, b] > 0.0:
                    p = link_prob(a, b, prr, ge_index, ge_bad, ge_lg, ge_lb)
                    out[s, a, b] = rng_uniform(rng) < p
        ge_advance(ge_bad, ge_p, ge_r, rng)
    return out
