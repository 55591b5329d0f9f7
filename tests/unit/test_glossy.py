"""Glossy flooding: hop timing on a perfect line, delivery ratio against the analytic value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from protocol.air.loss import LossModel
from protocol.air.radio import resolve, resolve_batch
from protocol.air.timing import glossy_flood_slots
from protocol.air.topology import Topology


def test_perfect_line_hop_h_first_receives_in_slot_h_minus_1() -> None:
    t = Topology.line(6)
    src = np.array([0, 3, 5], dtype=np.int16)
    res = resolve("glossy", t, src, 0, seed=1, n_tx=3)
    hops = t.hop_matrix()
    for g, s in enumerate(src):
        for node in range(6):
            expect = -1 if node == s else hops[s, node] - 1
            assert res.first_rx_slot[g, node] == expect, (g, node)
    assert res.decoded.all() and res.complete
    flood = glossy_flood_slots(5, 3)
    assert res.n_slots == 3 * flood
    # every node sends each packet n_tx times, and receives it exactly once
    np.testing.assert_array_equal(res.tx_slots, 3 * 3)
    np.testing.assert_array_equal(res.rx_ok_slots, np.array([2, 3, 3, 2, 3, 2]))
    np.testing.assert_array_equal(res.tx_slots + res.rx_slots + res.off_slots, res.n_slots)
    # a node holds packet g after g * flood + hops slots; full rank after its last one
    for node in range(6):
        expect = max(g * flood + hops[s, node] for g, s in enumerate(src) if s != node)
        assert res.full_rank_slot[node] == expect
    assert res.completion_slot == res.full_rank_slot.max()


@pytest.mark.parametrize("p, n_tx", [(0.6, 2), (0.4, 3)])
def test_two_hop_delivery_ratio_matches_analytic(p: float, n_tx: int) -> None:
    t = Topology.line(3, prr=p)
    src = np.zeros(250, dtype=np.int16)  # 250 floods from node 0 per round
    results = resolve_batch("glossy", t, [src] * 16, range(16), seed=2, n_tx=n_tx)
    n = 250 * 16
    one_hop = 1 - (1 - p) ** n_tx
    two_hop = one_hop * one_hop
    got1 = sum(int(r.decoded[1].sum()) for r in results)
    got2 = sum(int(r.decoded[2].sum()) for r in results)
    lo, hi = binom.interval(0.999, n, one_hop)
    assert lo <= got1 <= hi
    lo, hi = binom.interval(0.999, n, two_hop)
    assert lo <= got2 <= hi


def test_concurrent_senders_help_a_receiver() -> None:
    # a diamond 0 -> {1, 2} -> 3: node 3 hears two relays, so it does better than a chain
    prr = np.zeros((4, 4))
    for a, b in [(0, 1), (0, 2), (1, 3), (2, 3)]:
        prr[a, b] = prr[b, a] = 0.5
    t = Topology(np.zeros((4, 2)), ("compute",) * 4, prr, 0).validate()
    chain = Topology.line(3, prr=0.5)
    src = np.zeros(400, dtype=np.int16)
    diamond = np.mean([r.decoded[3].mean() for r in resolve_batch("glossy", t, [src] * 5, range(5), n_tx=1)])
    line = np.mean([r.decoded[2].mean() for r in resolve_batch("glossy", chain, [src] * 5, range(5), n_tx=1)])
    assert diamond > line + 0.05


def test_dead_source_floods_nothing_and_link_cut_partitions() -> None:
    t = Topology.line(4)
    res = resolve("glossy", t, np.array([0, 2], np.int16), 0, alive=np.array([True, True, False, True]))
    assert not res.decoded[[0, 1, 3], 1].any()
    assert res.tx_slots[2] == 0 and res.rx_slots[2] == 0
    assert not res.decoded[3, 0]  # node 2 is dead: nothing crosses it
    loss = LossModel(t)
    loss.link_down(1, 2)
    res = resolve("glossy", t, np.array([0, 3], np.int16), 0, loss=loss)
    assert res.decoded[:2, 0].all() and not res.decoded[2:, 0].any()
    assert res.decoded[2:, 1].all() and not res.decoded[:2, 1].any()
    assert not res.complete and np.all(res.full_rank_slot == -1)
