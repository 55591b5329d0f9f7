"""Mixer: slot-level emulation of many-to-all random linear network coding over GF(2).

A round has ``G`` source packets (packet ``g`` starts at node ``sources[g]``) and
``max(3G, 150)`` slots. Every node keeps the coding vectors it has received in reduced row
echelon form (RREF), as bitmask rows of ``ceil(G / 64)`` uint64 words indexed by their pivot
column; packet contents never matter to the air, so only coding vectors are tracked.

Per slot (all nodes act on their state at the start of the slot, as on real synchronous
transmissions):

**Transmit policy.** The initiator opens the round by transmitting in slot 0. A node may
transmit only once it is synchronized, i.e. after its first reception (it needs the slot
clock), and only if it holds something (rank > 0). A synchronized node that is still active
transmits with probability ``tx_prob`` (default 1/2) and listens otherwise; what it sends is
a uniformly random non-zero combination (XOR of a random subset) of its basis rows. Why 1/2:
it maximises ``p (1 - p)``, the chance that of two neighbours one sends while the other
listens, and under the capture model below concurrent senders do not destroy each other, so
there is nothing to gain from sending less often in dense neighbourhoods. (Mixer's firmware
uses a more elaborate, state-dependent policy; a fixed probability keeps the model simple.)

**Capture model.** A listening node with transmitting in-neighbours locks onto one of them,
chosen with probability proportional to that link's current success probability (a stronger
link is more likely to win the capture), and receives its packet with that probability;
otherwise the slot ends in an RX timeout. So with one transmitter the reception probability is
the link's PRR, and more concurrent senders never raise it above the best link.

**Rank and decoding.** A received vector is reduced against the basis; if something is left
it is innovative and joins the basis (back-substituting its pivot into the other rows, so the
basis stays in RREF). Packet ``k`` is decoded when ``e_k`` lies in the row space, which in
RREF means row ``k`` exists and equals ``e_k`` (partial decoding counts).

**Smart shutdown.** Headers carry a full-rank map (one bit per node): a node's own bit once
it has full rank, merged (OR) with the map of every packet it receives. A node that knows
every alive node has full rank sends ``final_tx`` (2) more packets in the next slots, so its
neighbours learn it too, and then turns its radio off. A node with full rank also turns off
after ``idle_off`` (8) quiet slots in a row if its map says all its neighbours have full rank,
or after ``4 * idle_off`` quiet slots in any case (its better informed neighbours already
left, so it would wait for nothing). A slot is quiet unless the node received an innovative
packet, a new bit of the map, or a packet from a neighbour without full rank (one that still
needs help). The round loop stops once every alive node is off; the rest of the slots are
off slots for everybody.

Dead nodes (``alive`` False) neither send nor receive; their packets never spread.
"""

from __future__ import annotations

import numpy as np
from protocol.air.jit import njit

from protocol.air.gilbert_elliott import ge_advance
from protocol.air.rng import rng_next, rng_uniform

_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_TABLE = np.array(
    [0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4,
     62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5,
     63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
     46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6], dtype=np.int64)


@njit(cache=True, inline="always")
def _ctz(t: np.uint64, table: np.ndarray) -> int:
    """Index of the single set bit of ``t`` (a power of two)."""
    index: int = table[(t * _DEBRUIJN) >> np.uint64(58)]
    return index


@njit(cache=True)
def collide(cand_p: np.ndarray, nc: int, rng: np.ndarray) -> int:
    """Coordinated policy's reception: each of the ``nc`` concurrent senders' packets reaches
    the listener with its link's success probability ``cand_p[j]``; the slot succeeds only when
    exactly one arrives (its index), else -1 (nothing, or a collision: without received powers
    in the model no sender is taken to dominate, a conservative choice of ours).
    One hop, k senders of PRR q: P(success) = k q (1 - q)^(k - 1)."""
    got = -1
    n_got = 0
    for j in range(nc):
        if rng_uniform(rng) < cand_p[j]:
            n_got += 1
            got = j
    return got if n_got == 1 else -1


@njit(cache=True)
def _insert(basis: np.ndarray, piv: np.ndarray, order: np.ndarray, rank: np.ndarray, b: int,
            v: np.ndarray, n_words: int, table: np.ndarray) -> bool:
    """Insert vector ``v`` (modified) into node ``b``'s RREF basis; True if innovative."""
    one = np.uint64(1)
    zero = np.uint64(0)
    # reduce by the pivots present in v (pivot bits of v do not change while reducing)
    for w in range(n_words):
        m = v[w] & piv[b, w]
        while m != zero:
            t = m & (~m + one)
            p = w * 64 + _ctz(t, table)
            for x in range(w, n_words):
                v[x] ^= basis[b, p, x]
            m ^= t
    c = -1
    for w in range(n_words):
        if v[w] != zero:
            t = v[w] & (~v[w] + one)
            c = w * 64 + _ctz(t, table)
            break
    if c < 0:
        return False
    cw = c // 64
    cbit = one << np.uint64(c % 64)
    # back-substitute: rows with a pivot left of c may have bit c set
    for i in range(rank[b]):
        q = order[b, i]
        if q < c and (basis[b, q, cw] & cbit) != zero:
            for x in range(q // 64, n_words):
                basis[b, q, x] ^= v[x]
    for x in range(n_words):
        basis[b, c, x] = v[x]
    piv[b, cw] |= cbit
    order[b, rank[b]] = c
    rank[b] += 1
    return True


@njit(cache=True)
def _combine(basis: np.ndarray, order: np.ndarray, rank: np.ndarray, a: int, out: np.ndarray,
             n_words: int, rng: np.ndarray) -> None:
    """A uniformly random non-zero combination of node ``a``'s basis rows into ``out``."""
    r = rank[a]
    while True:
        for x in range(n_words):
            out[x] = np.uint64(0)
        picked = 0
        bits = np.uint64(0)
        for i in range(r):
            if i % 64 == 0:
                bits = rng_next(rng)
            if (bits >> np.uint64(i % 64)) & np.uint64(1):
                q = order[a, i]
                for x in range(q // 64, n_words):
                    out[x] ^= basis[a, q, x]
                picked += 1
        if picked > 0:
            return


@njit(cache=True)
def mixer_batch_kernel(
    in_ptr: np.ndarray, in_idx: np.ndarray, prr_stack: np.ndarray, round_index: np.ndarray,
    ge_index: np.ndarray, ge_bad: np.ndarray, ge_p: np.ndarray, ge_r: np.ndarray,
    ge_lg: np.ndarray, ge_lb: np.ndarray, alive: np.ndarray, initiator: int,
    src_flat: np.ndarray, g_ptr: np.ndarray, slots: np.ndarray, seeds: np.ndarray,
    tx_prob: float, final_tx: int, idle_off: int, policy: int, table: np.ndarray,
    decoded_flat: np.ndarray, d_ptr: np.ndarray, counts: np.ndarray, full_rank: np.ndarray,
    completion: np.ndarray,
) -> None:
    """Resolve consecutive Mixer rounds. ``counts[r, k, b]``: k = tx, rx, rx_ok, off slots.

    ``policy`` 0: every synced node sends with ``tx_prob``, a listener captures one sender
    (the module docstring); 1 (coordinated, ``mixer-coordinated``): the slot's round-robin
    owner (node ``slot % n``) sends, the others with ``1 / (d + 1)`` for ``d`` usable
    in-neighbours, and a reception succeeds only without a collision (:func:`collide`).

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
    cnt = np.zeros((4, n), dtype=np.int64)
    cand_a = np.zeros(n, dtype=np.int64)
    cand_p = np.zeros(n, dtype=np.float64)
    p_node = np.zeros(n, dtype=np.float64)  # per node transmit probability of this round
    v = np.zeros(w_max, dtype=np.uint64)
    rng = np.empty(1, dtype=np.uint64)
    has_ge = ge_bad.shape[0] > 0
    for r in range(n_rounds):
        g0 = g_ptr[r]
        G = g_ptr[r + 1] - g0
        W = (G + 63) // 64
        prr = prr_stack[round_index[r]]
        n_slots = slots[r]
        rng[0] = seeds[r]
        basis[:, :, :] = 0
        piv[:, :] = 0
        rank[:] = 0
        known[:, :] = 0
        in_mask[:, :] = 0
        cnt[:, :] = 0
        for b in range(n):
            for e in range(in_ptr[b], in_ptr[b + 1]):
                a = in_idx[e]
                if alive[a] and prr[a, b] > 0.0:
                    in_mask[b, a // 64] |= one << np.uint64(a % 64)
            d = 0
            for e in range(in_ptr[b], in_ptr[b + 1]):
                a = in_idx[e]
                if alive[a] and prr[a, b] > 0.0:
                    d += 1
            p_node[b] = tx_prob if policy == 0 else 1.0 / (d + 1)
            synced[b] = b == initiator
            on[b] = alive[b]
            all_known[b] = False
            left[b] = final_tx
            quiet[b] = 0
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
                    owner = policy == 1 and b == slot % n
                    if (slot == 0 and b == initiator) or all_known[b] or owner or rng_uniform(rng) < p_node[b]:
                        txm[b // 64] |= one << np.uint64(b % 64)
            # --- receptions (capture: one sender, chosen by link strength)
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
                            nc += 1
                            total += q
                if nc == 0:
                    continue
                i = 0
                if policy == 1:
                    i = collide(cand_p, nc, rng)
                    if i < 0:
                        continue
                elif nc > 1:
                    pick = rng_uniform(rng) * total
                    while i < nc - 1:
                        pick -= cand_p[i]
                        if pick < 0.0:
                            break
                        i += 1
                a = cand_a[i]
                if policy == 0 and rng_uniform(rng) >= cand_p[i]:
                    continue
                cnt[2, b] += 1
                synced[b] = True
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
            # --- smart shutdown (takes effect from the next slot)
            for b in range(n):
                if not on[b]:
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
            if has_ge:
                ge_advance(ge_bad, ge_p, ge_r, rng)
        for b in range(n):
            cnt[3, b] += n_slots - s_used
            for k in range(4):
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
