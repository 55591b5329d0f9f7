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

from protocol.air.rng import rng_uniform

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


@njit(cache=True)
def coordinated_sends(b: int, slot: int, n: int, startup_source: int, initiator: int,
                      sent_last: bool, state: np.ndarray, in_ptr: np.ndarray,
                      in_idx: np.ndarray, rng: np.ndarray) -> bool:
    """Mixer's coordinated transmit decision of synced node ``b`` for 0-based ``slot``
    (``mixer_processing.c``, ``mixer_update_slot``, without requests and age boost), in order:

    1. the initiator sends in slot 0; the slot's owner ``slot % n`` sends;
    2. a node that sent in the previous slot does not (except the initiator in slot 1);
    3. startup owner: the source of packet ``slot`` sends (``startup_source``, -1 after the
       first ``G - 1`` slots);
    4. foreign slot: the owner is in ``b``'s history (present or finished): ``b`` stays silent;
    5. concurrent slot: ``b`` sends with ``1 / (density + 1)``, density = 1 + the neighbours
       in its history (``MX_COORDINATED_TX``'s ``p = 1 / (d + 1)``).
    """
    owner = slot % n
    if (slot == 0 and b == initiator) or owner == b:
        return True
    if sent_last:
        return slot == 1 and b == initiator
    if startup_source == b:
        return True
    if state[b, owner] != ABSENT:
        return False
    density = 1
    for e in range(in_ptr[b], in_ptr[b + 1]):
        if state[b, in_idx[e]] != ABSENT:
            density += 1
    return rng_uniform(rng) < 1.0 / (density + 1)
