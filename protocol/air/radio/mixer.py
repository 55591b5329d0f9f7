"""Mixer: slot-level emulation of many-to-all random linear network coding over GF(2).

A round has ``G`` source packets (packet ``g`` starts at node ``sources[g]``) and
``max(3G, 150)`` slots. Every node keeps the coding vectors it has received in reduced row
echelon form (RREF), as bitmask rows of ``ceil(G / 64)`` uint64 words indexed by their pivot
column; packet contents never matter to the air, so only coding vectors are tracked.

Per slot (all nodes act on their state at the start of the slot, as on real synchronous
transmissions). Two policies share the coding; they differ in who sends, what a listener
decodes and when a node stops:

**Idealized (``mixer``, policy 0).** The initiator opens the round in slot 0. A node may
transmit once it is synchronized (after its first reception: it needs the slot clock) and
holds something (rank > 0); it then sends with probability ``tx_prob`` (default 1/2) a
uniformly random non-zero combination of its basis rows. *Capture, idealized*: a listener
locks onto one transmitting in-neighbour, picked with probability proportional to the link's
success probability, and receives its packet with that probability; concurrent senders never
destroy each other (1/2 then maximises ``p (1 - p)``). *Shutdown*: headers carry a full-rank
map (one bit per node, OR-merged on every reception); a node that knows every alive node has
full rank sends ``final_tx`` (2) more packets and turns off; a full-rank node also turns off
after ``idle_off`` (8) quiet slots if its map says all its neighbours are full, or after
``4 * idle_off`` in any case. Use: the upper bound of what the air can deliver, and the
lossless runs the equivalence tests rely on (every packet arrives).

**Coordinated (``mixer-coordinated``, policy 1), the firmware's.** Who sends:
:func:`~protocol.air.radio.mixer_history.coordinated_sends` (the round-robin owner ``slot % n``;
no two slots in a row; the startup owner of packet ``slot``; silence in a slot whose owner is a
known neighbour; else ``1 / (density + 1)`` by the neighbours in the node's history). *Capture*: :mod:`protocol.air.radio.capture` (the strongest concurrent sender
is decoded only if it beats the sum of the others by the co-channel threshold, then with its
link's success probability). *Smart shutdown mode 2* ("no unfinished neighbour",
:mod:`protocol.air.radio.mixer_history`): a full-rank node that heard a full-rank packet and
has no unfinished neighbour in its history sends one more packet (carrying the radio-off flag)
and stops. *Sync loss*: ``resync_after`` (20) synced listening slots in a row without a
reception (Mixer's RX window has then grown from ``RX_WINDOW_MIN`` to ``RX_WINDOW_MAX`` by
``RX_WINDOW_INCREMENT``: their ratio is 20 in ``mixer_transport_ble.c`` for our slot lengths)
and the node is back to resync: it listens through whole slots and stays silent until it
receives again. Not modelled: the request/helper heuristics, the discovery phase (its
exit-slot table and transmit ramp), the age-based transmit boost, the systematic first
transmissions of a node's own rows (we always send a random combination).

**Rank and decoding.** A received vector is reduced against the basis; if something is left
it is innovative and joins the basis (back-substituting its pivot into the other rows, so the
basis stays in RREF). Packet ``k`` is decoded when ``e_k`` lies in the row space, which in
RREF means row ``k`` exists and equals ``e_k`` (partial decoding counts).

**Listening slots** are counted three ways for the energy (:mod:`protocol.air.energy`): with a
reception, synced without one (an RX-window timeout), and unsynced without one (the radio
listens through the whole slot: before the node's first reception, or after a sync loss).

The round loop stops once every alive node is off; the rest of the slots are off slots.

Dead nodes (``alive`` False) neither send nor receive; their packets never spread.
"""

from __future__ import annotations

import numpy as np
from protocol.air.jit import njit

from protocol.air.gilbert_elliott import ge_advance
from protocol.air.radio.capture import capture
from protocol.air.radio.gf2 import _DEBRUIJN_TABLE, _combine, _ctz, _insert
from protocol.air.radio.mixer_history import coordinated_sends, history_heard, present_after_purge
from protocol.air.rng import rng_uniform

__all__ = ["_DEBRUIJN_TABLE", "_insert", "mixer_batch_kernel"]

@njit(cache=True)
def mixer_batch_kernel(
    in_ptr: np.ndarray, in_idx: np.ndarray, prr_stack: np.ndarray, round_index: np.ndarray,
    ge_index: np.ndarray, ge_bad: np.ndarray, ge_p: np.ndarray, ge_r: np.ndarray,
    ge_lg: np.ndarray, ge_lb: np.ndarray, alive: np.ndarray, initiator: int,
    src_flat: np.ndarray, g_ptr: np.ndarray, slots: np.ndarray, seeds: np.ndarray,
    tx_prob: float, final_tx: int, idle_off: int, policy: int, rx_mw: np.ndarray,
    capture_ratio: float, shutdown: int, resync_after: int, table: np.ndarray,
    decoded_flat: np.ndarray, d_ptr: np.ndarray, counts: np.ndarray, full_rank: np.ndarray,
    completion: np.ndarray,
) -> None:
    """Resolve consecutive Mixer rounds. ``counts[r, k, b]``: k = tx, rx, rx_ok, off, listen
    slots (listen: listening slots without a reception while not synchronized, a subset of
    rx - rx_ok).

    ``policy`` 0 (``mixer``): every synced node sends with ``tx_prob``, a listener captures
    one sender by link strength, the idealized shutdown rules (module docstring). ``policy`` 1
    (``mixer-coordinated``): the firmware's transmit decision
    (:func:`~protocol.air.radio.mixer_history.coordinated_sends`); receptions by the capture model
    (:func:`~protocol.air.radio.capture.capture`, powers ``rx_mw``, threshold ``capture_ratio``);
    ``shutdown`` 1: smart shutdown mode 2 (:mod:`~protocol.air.radio.mixer_history`), 0: none;
    ``resync_after`` (> 0) synced listening slots in a row without a reception make the node
    lose its sync (it listens through whole slots and stays silent until it receives again).

    ``ge_bad`` carries the Gilbert–Elliott states from round to round (updated in place).
    Node sets (transmitters, in-neighbours, full-rank maps) are bitmasks of
    ``ceil(n / 64)`` words, so a listener only visits its transmitting neighbours.
    """
    n = alive.shape[0]
    n_rounds = seeds.shape[0]
    g_max = 1
    for r in range(n_rounds):
        g_max = max(g_max, g_ptr[r + 1] - g_ptr[r])
    w_max = (g_max + 63) // 64
    n_mw = (n + 63) // 64
    one = np.uint64(1)
    zero = np.uint64(0)
    basis = np.zeros((n, g_max, w_max), dtype=np.uint64)
    piv = np.zeros((n, w_max), dtype=np.uint64)
    order = np.zeros((n, g_max), dtype=np.int64)
    rank = np.zeros(n, dtype=np.int64)
    synced = np.zeros(n, dtype=np.bool_)
    on = np.zeros(n, dtype=np.bool_)
    coded_ready = np.zeros(n, dtype=np.bool_)
    coded = np.zeros((n, w_max), dtype=np.uint64)
    known = np.zeros((n, n_mw), dtype=np.uint64)  # full-rank map each node knows
    in_mask = np.zeros((n, n_mw), dtype=np.uint64)  # alive senders with a usable link
    txm = np.zeros(n_mw, dtype=np.uint64)
    alive_map = np.zeros(n_mw, dtype=np.uint64)
    for b in range(n):
        if alive[b]:
            alive_map[b // 64] |= one << np.uint64(b % 64)
    all_known = np.zeros(n, dtype=np.bool_)
    left = np.zeros(n, dtype=np.int64)  # final transmissions left once all_known
    quiet = np.zeros(n, dtype=np.int64)  # consecutive quiet slots (nothing new heard)
    miss = np.zeros(n, dtype=np.int64)  # synced listening slots in a row without a reception
    approved = np.zeros(n, dtype=np.bool_)  # mode 2: shutdown approved, radio-off flag set
    partner = np.zeros(n, dtype=np.bool_)  # mode 2: heard a full-rank packet
    sent_last = np.zeros(n, dtype=np.bool_)  # transmitted in the previous slot
    h_last = np.zeros((n, n), dtype=np.int64)
    h_state = np.zeros((n, n), dtype=np.int8)
    cnt = np.zeros((5, n), dtype=np.int64)
    cand_a = np.zeros(n, dtype=np.int64)
    cand_p = np.zeros(n, dtype=np.float64)
    cand_w = np.zeros(n, dtype=np.float64)
    v = np.zeros(w_max, dtype=np.uint64)
    rng = np.empty(1, dtype=np.uint64)
    has_ge = ge_bad.shape[0] > 0
    for r in range(n_rounds):
        g0 = g_ptr[r]
        G = g_ptr[r + 1] - g0
        W = (G + 63) // 64
        prr = prr_stack[round_index[r]]
        n_slots = slots[r]
        present_win = (n_slots * 3) // 4
        rng[0] = seeds[r]
        basis[:, :, :] = 0
        piv[:, :] = 0
        rank[:] = 0
        known[:, :] = 0
        in_mask[:, :] = 0
        cnt[:, :] = 0
        h_last[:, :] = -1
        h_state[:, :] = 0
        for b in range(n):
            for e in range(in_ptr[b], in_ptr[b + 1]):
                a = in_idx[e]
                if alive[a] and prr[a, b] > 0.0:
                    in_mask[b, a // 64] |= one << np.uint64(a % 64)
            synced[b] = b == initiator
            on[b] = alive[b]
            all_known[b] = False
            left[b] = final_tx
            quiet[b] = 0
            miss[b] = 0
            sent_last[b] = False
            approved[b] = False
            partner[b] = False
        for g in range(G):
            s = src_flat[g0 + g]
            basis[s, g, g // 64] = one << np.uint64(g % 64)
            if (piv[s, g // 64] >> np.uint64(g % 64)) & one == zero:
                piv[s, g // 64] |= one << np.uint64(g % 64)
                order[s, rank[s]] = g
                rank[s] += 1
        n_on = 0
        n_full = 0
        for b in range(n):
            full_rank[r, b] = 0 if rank[b] == G else -1
            if rank[b] == G:
                known[b, b // 64] |= one << np.uint64(b % 64)
            if alive[b]:
                n_on += 1
                if rank[b] == G:
                    n_full += 1
        n_alive = n_on
        completion[r] = 0 if n_full == n_alive else -1
        s_used = 0
        for slot in range(n_slots):
            if n_on == 0:
                break
            s_used = slot + 1
            # --- who transmits
            for x in range(n_mw):
                txm[x] = zero
            for b in range(n):
                coded_ready[b] = False
                if on[b] and synced[b] and rank[b] > 0:
                    if policy == 1:
                        start = src_flat[g0 + slot] if slot < G - 1 else -1
                        if coordinated_sends(b, slot, n, start, initiator, sent_last[b],
                                             h_state, in_ptr, in_idx, rng):
                            txm[b // 64] |= one << np.uint64(b % 64)
                    elif (slot == 0 and b == initiator) or all_known[b] or rng_uniform(rng) < tx_prob:
                        txm[b // 64] |= one << np.uint64(b % 64)
            # --- receptions
            for b in range(n):
                if not on[b]:
                    cnt[3, b] += 1
                    continue
                if (txm[b // 64] >> np.uint64(b % 64)) & one != zero:
                    cnt[0, b] += 1
                    continue
                cnt[1, b] += 1
                nc = 0
                total = 0.0
                for w in range(n_mw):
                    m = in_mask[b, w] & txm[w]
                    while m != zero:
                        t = m & (~m + one)
                        a = w * 64 + _ctz(t, table)
                        m ^= t
                        q = prr[a, b]
                        if has_ge:
                            k = ge_index[a, b]
                            if k >= 0:
                                q *= 1.0 - (ge_lb[k] if ge_bad[k] else ge_lg[k])
                        if q > 0.0:
                            cand_a[nc] = a
                            cand_p[nc] = q
                            cand_w[nc] = rx_mw[a, b]
                            nc += 1
                            total += q
                i = -1
                if policy == 1:
                    i = capture(cand_p, cand_w, nc, capture_ratio, rng)
                elif nc > 0:
                    i = 0
                    if nc > 1:
                        pick = rng_uniform(rng) * total
                        while i < nc - 1:
                            pick -= cand_p[i]
                            if pick < 0.0:
                                break
                            i += 1
                    if rng_uniform(rng) >= cand_p[i]:
                        i = -1
                if i < 0:  # nothing decoded: an RX timeout, or a whole slot listened unsynced
                    if not synced[b]:
                        cnt[4, b] += 1
                    elif policy == 1:
                        miss[b] += 1
                        if resync_after > 0 and miss[b] >= resync_after:
                            synced[b] = False
                    continue
                a = cand_a[i]
                cnt[2, b] += 1
                synced[b] = True
                miss[b] = 0
                if policy == 1:
                    history_heard(h_last, h_state, b, a, slot, rank[a] == G, approved[a])
                    if rank[a] == G:
                        partner[b] = True
                if rank[b] < G:
                    if not coded_ready[a]:
                        _combine(basis, order, rank, a, coded[a], W, rng)
                        coded_ready[a] = True
                    for x in range(W):
                        v[x] = coded[a, x]
                    if not _insert(basis, piv, order, rank, b, v, W, table):
                        pass
                    elif rank[b] < G:
                        quiet[b] = -1
                    else:
                        quiet[b] = -1
                        full_rank[r, b] = slot + 1
                        known[b, b // 64] |= one << np.uint64(b % 64)
                        n_full += 1
                        if n_full == n_alive:
                            completion[r] = slot + 1
                # the header's full-rank map, as the sender had it at the start of the slot
                # (a sender's map only changes when it receives, which it does not while sending)
                if rank[a] < G:
                    quiet[b] = -1  # a neighbour still needs packets: stay to help
                for x in range(n_mw):
                    merged = known[b, x] | known[a, x]
                    if merged != known[b, x]:
                        known[b, x] = merged
                        quiet[b] = -1
            # --- shutdown (takes effect from the next slot)
            for b in range(n):
                if not on[b]:
                    continue
                if policy == 1:
                    if shutdown == 0:
                        continue
                    sent = (txm[b // 64] >> np.uint64(b % 64)) & one != zero
                    if approved[b] and sent:  # the radio-off packet is out: stop
                        on[b] = False
                        n_on -= 1
                        continue
                    n_present = present_after_purge(h_last, h_state, b, slot, in_ptr, in_idx,
                                                    present_win, n)
                    if rank[b] == G and not approved[b] and partner[b] and n_present == 0:
                        approved[b] = True
                    continue
                quiet[b] += 1
                if rank[b] == G and quiet[b] >= idle_off:
                    # (B) every neighbour is known to be full, or (C) long silence
                    nb_full = True
                    for x in range(n_mw):
                        if known[b, x] & in_mask[b, x] != in_mask[b, x]:
                            nb_full = False
                            break
                    if nb_full or quiet[b] >= 4 * idle_off:
                        on[b] = False
                        n_on -= 1
                        continue
                if all_known[b]:
                    if (txm[b // 64] >> np.uint64(b % 64)) & one != zero:
                        left[b] -= 1
                    if left[b] <= 0:
                        on[b] = False
                        n_on -= 1
                    continue
                if rank[b] == G:
                    ok = True
                    for x in range(n_mw):
                        if known[b, x] & alive_map[x] != alive_map[x]:
                            ok = False
                            break
                    all_known[b] = ok
            for b in range(n):
                sent_last[b] = (txm[b // 64] >> np.uint64(b % 64)) & one != zero
            if has_ge:
                ge_advance(ge_bad, ge_p, ge_r, rng)
        for b in range(n):
            cnt[3, b] += n_slots - s_used
            for k in range(5):
                counts[r, k, b] = cnt[k, b]
            base = d_ptr[r] + b * G
            for g in range(G):
                w = g // 64
                ok = (piv[b, w] >> np.uint64(g % 64)) & one != zero
                if ok:
                    for x in range(W):
                        want = (one << np.uint64(g % 64)) if x == w else zero
                        if basis[b, g, x] != want:
                            ok = False
                            break
                decoded_flat[base + g] = ok
