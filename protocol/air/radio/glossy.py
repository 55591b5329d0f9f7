"""Glossy-style flooding: one flood per source packet, in packet order.

Each flood has a fixed length of ``flood_slots`` slots (default ``diameter + 2 * n_tx``,
:func:`protocol.air.timing.glossy_flood_slots`), the way Glossy floods get a fixed time budget;
a chain of hops that is slower than that is cut off. The source transmits in slots
``0 .. n_tx - 1`` of its flood. A node that first receives the packet in slot ``t`` (its relay
counter says how far it is) retransmits it in slots ``t + 1 .. t + n_tx`` and then turns its
radio off for the rest of the flood. A node without the packet listens; it receives it in a
slot if the link from any transmitting neighbour succeeds (synchronous transmissions of the
same packet interfere constructively / capture), i.e. with probability
``1 - prod(1 - p_link)``. So on a perfect line the node ``h`` hops from the source first
receives in slot ``h - 1`` of the flood (it holds the packet after ``h`` slots).

A node that never receives listens for the whole flood (every slot an RX timeout): it cannot
know that nobody is left to send. Floods of dead sources still take their slots (everybody
listens in vain). Nodes that hold the packet and have sent it ``n_tx`` times are off.

``full_rank_slot`` is the number of slots (counted from the start of the round) after which
the node held every packet of the round, ``-1`` if it missed one.
"""

from __future__ import annotations

import numpy as np
from protocol.air.jit import njit

from protocol.air.gilbert_elliott import ge_advance, link_prob
from protocol.air.rng import rng_uniform


@njit(cache=True)
def glossy_batch_kernel(
    in_ptr: np.ndarray, in_idx: np.ndarray, prr_stack: np.ndarray, round_index: np.ndarray,
    ge_index: np.ndarray, ge_bad: np.ndarray, ge_p: np.ndarray, ge_r: np.ndarray,
    ge_lg: np.ndarray, ge_lb: np.ndarray, alive: np.ndarray,
    src_flat: np.ndarray, g_ptr: np.ndarray, flood_slots: int, n_tx: int, seeds: np.ndarray,
    decoded_flat: np.ndarray, d_ptr: np.ndarray, counts: np.ndarray, full_rank: np.ndarray,
    completion: np.ndarray, first_rx: np.ndarray,
) -> None:
    """Resolve consecutive Glossy rounds. ``counts[r, k, b]``: k = tx, rx, rx_ok, off slots.

    ``first_rx`` (int64 [sum G, n]) gets each node's first reception slot within each flood
    (-1 never; the source gets -1 too).
    """
    n = alive.shape[0]
    n_rounds = seeds.shape[0]
    has = np.zeros(n, dtype=np.bool_)
    start = np.zeros(n, dtype=np.int64)
    tx = np.zeros(n, dtype=np.bool_)
    got = np.zeros(n, dtype=np.bool_)
    rng = np.empty(1, dtype=np.uint64)
    for r in range(n_rounds):
        g0 = g_ptr[r]
        G = g_ptr[r + 1] - g0
        prr = prr_stack[round_index[r]]
        rng[0] = seeds[r]
        for b in range(n):
            for k in range(4):
                counts[r, k, b] = 0
            full_rank[r, b] = 0
        for g in range(G):
            s = src_flat[g0 + g]
            offset = g * flood_slots
            for b in range(n):
                has[b] = b == s
                start[b] = 0
                first_rx[g0 + g, b] = -1
            used = 0
            for slot in range(flood_slots):
                active = False
                for b in range(n):
                    tx[b] = alive[b] and has[b] and start[b] <= slot < start[b] + n_tx
                    if tx[b]:
                        active = True
                if not active:
                    break
                used = slot + 1
                for b in range(n):
                    got[b] = False
                    if not alive[b]:
                        counts[r, 3, b] += 1
                    elif tx[b]:
                        counts[r, 0, b] += 1
                    elif has[b]:
                        counts[r, 3, b] += 1
                    else:
                        counts[r, 1, b] += 1
                        for e in range(in_ptr[b], in_ptr[b + 1]):
                            a = in_idx[e]
                            if tx[a]:
                                p = link_prob(a, b, prr, ge_index, ge_bad, ge_lg, ge_lb)
                                if p > 0.0 and rng_uniform(rng) < p:
                                    got[b] = True
                                    break
                for b in range(n):
                    if got[b]:
                        has[b] = True
                        start[b] = slot + 1
                        first_rx[g0 + g, b] = slot
                        counts[r, 2, b] += 1
                ge_advance(ge_bad, ge_p, ge_r, rng)
            rest = flood_slots - used
            for b in range(n):
                if not alive[b] or has[b]:
                    counts[r, 3, b] += rest
                else:
                    counts[r, 1, b] += rest  # keeps listening until the flood ends
                if has[b]:
                    decoded_flat[d_ptr[r] + b * G + g] = True
                    if b != s and full_rank[r, b] >= 0:
                        full_rank[r, b] = max(full_rank[r, b], offset + first_rx[g0 + g, b] + 1)
                else:
                    decoded_flat[d_ptr[r] + b * G + g] = False
                    full_rank[r, b] = -1
        done = 0
        n_alive = 0
        for b in range(n):
            if alive[b]:
                n_alive += 1
                if full_rank[r, b] >= 0:
                    done = max(done, full_rank[r, b])
                else:
                    done = -1
                    break
        completion[r] = done if n_alive > 0 else -1
