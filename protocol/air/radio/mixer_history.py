"""Mixer's neighbour history for smart shutdown mode 2 ("no unfinished neighbour").

Re-derived from Mixer's ``mixer_history.c`` and ``mixer_processing.c`` (TU Dresden / MPI-IS,
as shipped in RockNet's firmware with ``MX_SMART_SHUTDOWN_MODE 2``, ``mixer_config.h``):

* every reception from ``a`` updates ``a``'s entry: *absent* if the packet carries the
  radio-off flag, *finished* if it says full rank, else *present* (unfinished);
* entries age out: present after ``MX_HISTORY_WINDOW`` slots without news from ``a``
  (one public Mixer version: 3/4 of the round's slots, an older one ``3 * MX_NUM_NODES``;
  we take the first), finished after ``MX_HISTORY_WINDOW_FINISHED = MX_NUM_NODES`` slots;
* a node with full rank that has heard at least one full-rank packet (``have_full_rank_partner``)
  and has no present neighbour approves its shutdown; its next transmission carries the
  radio-off flag, after which it stops.

State arrays are per listener ``b`` and sender ``a``: ``last[b, a]`` (slot of the last
reception, -1 never) and ``state[b, a]`` (0 absent, 1 present, 2 finished).
"""

from __future__ import annotations

import numpy as np
from protocol.air.jit import njit

ABSENT = 0
PRESENT = 1
FINISHED = 2


@njit(cache=True, inline="always")
def history_heard(last: np.ndarray, state: np.ndarray, b: int, a: int, slot: int,
                  full_rank: bool, radio_off: bool) -> None:
    """``b`` received a packet from ``a`` in ``slot`` with these header flags."""
    last[b, a] = slot
    if radio_off:
        state[b, a] = ABSENT
    elif full_rank:
        state[b, a] = FINISHED
    else:
        state[b, a] = PRESENT


@njit(cache=True)
def present_after_purge(last: np.ndarray, state: np.ndarray, b: int, slot: int,
                        in_ptr: np.ndarray, in_idx: np.ndarray, present_win: int,
                        finished_win: int) -> int:
    """Age out ``b``'s entries at the end of ``slot``; return how many are still present."""
    n_present = 0
    for e in range(in_ptr[b], in_ptr[b + 1]):
        a = in_idx[e]
        s = state[b, a]
        if s == PRESENT:
            if slot - last[b, a] > present_win:
                state[b, a] = ABSENT
            else:
                n_present += 1
        elif s == FINISHED and slot - last[b, a] > finished_win:
            state[b, a] = ABSENT
    return n_present
