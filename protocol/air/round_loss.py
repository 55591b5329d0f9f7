"""The per-round loss view the radio reads: effective static PRRs, live nodes, GE chains.

A loss model builds one :class:`RoundLoss` per run of rounds. The static part of a round's
loss (everything but Gilbert–Elliott) is :func:`effective_prr`; rounds with the same active
jammers share one matrix, which :func:`stack_round_prrs` stores once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from protocol.air.faults import Faults
from protocol.air.gilbert_elliott import GEArrays


@dataclass(frozen=True, eq=False)
class RoundLoss:
    """What the radio needs for a run of rounds: static PRRs, live nodes, GE chains.

    ``prr_stack[round_index[i]]`` is the effective PRR matrix (everything but GE) of the
    ``i``-th round; ``node_up`` is False for nodes taken down.
    """

    round_nos: np.ndarray  # int64 [R]
    prr_stack: np.ndarray  # float64 [K, n, n]
    round_index: np.ndarray  # int64 [R]
    node_up: np.ndarray  # bool [n]
    ge: GEArrays

    def prr(self, i: int = 0) -> np.ndarray:
        """Effective static PRR matrix of the ``i``-th round of this view."""
        prr: np.ndarray = self.prr_stack[self.round_index[i]]
        return prr


def effective_prr(base_prr: np.ndarray, faults: Faults, active_jam_ids: tuple[int, ...],
                  positions_m: np.ndarray) -> np.ndarray:
    """float64 [n, n]: ``base_prr`` with the Bernoulli drops, downed links and the jammers in
    ``active_jam_ids`` applied (a new array; nodes at ``positions_m``, float [n, 2] metres).

    ``prr[a, b] * (1 - p_global) * (1 - p_link[a, b]) * jam_factor(b)``, 0 for a downed link.
    """
    p = base_prr * (1.0 - faults.p_global)
    for (a, b), q in faults.p_link.items():
        p[a, b] *= 1.0 - q
    for a, b in faults.down_links:
        p[a, b] = 0.0
    for j in faults.jams:
        if j.jam_id in active_jam_ids:
            p[:, j.receivers(positions_m)] *= j.prr_factor
    return p


def stack_round_prrs(rounds: np.ndarray,
                     static_of_round: Callable[[int], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(prr_stack, round_index)`` of :class:`RoundLoss` for ``rounds`` (int64 [R]).

    ``static_of_round(r)`` is round ``r``'s float64 [1, n, n] matrix; the same array object
    for two rounds is stored once. One round: that array itself, unchanged.
    """
    if rounds.size == 1:
        return static_of_round(int(rounds[0])), np.zeros(1, dtype=np.int64)
    mats: list[np.ndarray] = []
    keys: dict[int, int] = {}
    idx = np.empty(rounds.size, dtype=np.int64)
    for i, r in enumerate(rounds.tolist()):
        m = static_of_round(r)
        k = keys.get(id(m))
        if k is None:
            k = keys[id(m)] = len(mats)
            mats.append(m[0])
        idx[i] = k
    stack = mats[0][None, :, :] if len(mats) == 1 else np.stack(mats)
    return stack, idx
