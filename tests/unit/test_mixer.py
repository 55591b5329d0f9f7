"""Mixer: decoding on perfect and lossy networks, partitions, dead nodes, GF(2) algebra."""

from __future__ import annotations

import numpy as np
import pytest

from protocol.air.loss import LossError, LossModel
from protocol.air.radio import resolve, resolve_batch
from protocol.air.radio.mixer import _DEBRUIJN_TABLE, _insert
from protocol.air.timing import mixer_slots
from protocol.air.topology import Topology


def _sources(topology: Topology, per_device: int = 1) -> np.ndarray:
    """Packet 0 from the initiator, then ``per_device`` packets from every device."""
    dev = topology.device_nodes
    return np.concatenate([[topology.initiator], np.repeat(dev, per_device)]).astype(np.int16)


def _check_slot_sums(res) -> None:
    np.testing.assert_array_equal(res.tx_slots + res.rx_slots + res.off_slots, res.n_slots)
    assert np.all(res.rx_ok_slots <= res.rx_slots)


def test_full_mesh_everyone_decodes_everything() -> None:
    t = Topology.full_mesh(10)
    src = _sources(t, 2)
    for r in range(20):
        res = resolve("mixer", t, src, r, seed=1)
        assert res.decoded.all()
        assert res.complete and 0 < res.completion_slot < res.n_slots
        assert np.all(res.full_rank_slot > 0) and res.full_rank_slot.max() == res.completion_slot
        assert res.n_slots == mixer_slots(len(src))
        assert res.off_slots.min() > 0  # smart shutdown ends the round early
        _check_slot_sums(res)


def test_generation_larger_than_one_word() -> None:
    t = Topology.full_mesh(8)
    src = np.repeat(np.arange(8), 13).astype(np.int16)  # G = 104 -> two uint64 words
    res = resolve("mixer", t, src, 0, seed=2)
    assert res.n_slots == 3 * 104
    assert res.decoded.all() and res.complete


def test_default_testbed_prr_09_most_rounds_complete() -> None:
    t = Topology.default_testbed(prr=0.9)
    src = _sources(t)
    results = resolve_batch("mixer", t, [src] * 60, range(60), seed=3)
    assert np.mean([r.complete for r in results]) >= 0.9
    assert np.mean([r.decoded.mean() for r in results]) >= 0.99
    for r in results:
        _check_slot_sums(r)


def test_partition_nothing_crosses_the_cut() -> None:
    t = Topology.line(6)
    loss = LossModel(t)
    loss.link_down(2, 3)
    src = np.arange(6, dtype=np.int16)  # packet g comes from node g
    for r in range(10):
        res = resolve("mixer", t, src, r, loss=loss, seed=4)
        left, right = slice(0, 3), slice(3, 6)
        assert not res.decoded[left, right].any() and not res.decoded[right, left].any()
        assert res.decoded[left, left].all()  # each side still shares its own packets
        assert not res.complete and np.all(res.full_rank_slot == -1)
    # the right side has no initiator: its nodes never synchronize and only listen
    assert np.all(res.tx_slots[3:] == 0) and np.all(res.rx_ok_slots[3:] == 0)


def test_dead_node_is_silent_and_its_packets_stay_home() -> None:
    t = Topology.full_mesh(6)
    src = np.arange(6, dtype=np.int16)
    alive = np.array([True, True, True, False, True, True])
    res = resolve("mixer", t, src, 0, seed=5, alive=alive)
    assert res.tx_slots[3] == 0 and res.rx_slots[3] == 0 and res.off_slots[3] == res.n_slots
    assert not res.decoded[np.arange(6) != 3, 3].any()
    assert res.decoded[3, 3]  # a source always has its own packet
    others = np.delete(np.arange(6), 3)
    assert res.decoded[np.ix_(others, others)].all()
    assert not res.complete  # packet 3 is missing everywhere


def test_node_down_in_the_loss_model_acts_like_dead() -> None:
    t = Topology.full_mesh(5)
    loss = LossModel(t)
    loss.node_down(2)
    res = resolve("mixer", t, np.arange(5, dtype=np.int16), 0, loss=loss, seed=6)
    assert res.tx_slots[2] == 0 and res.rx_slots[2] == 0


def test_deterministic_and_batch_equals_single_rounds() -> None:
    t = Topology.default_testbed(prr=0.8)
    srcs = [_sources(t, k % 2 + 1) for k in range(6)]
    batch = resolve_batch("mixer", t, srcs, range(10, 16), seed=9)
    for k, res in enumerate(batch):
        single = resolve("mixer", t, srcs[k], 10 + k, seed=9)
        np.testing.assert_array_equal(res.decoded, single.decoded)
        np.testing.assert_array_equal(res.tx_slots, single.tx_slots)
        np.testing.assert_array_equal(res.full_rank_slot, single.full_rank_slot)
    other = resolve("mixer", t, srcs[0], 10, seed=10)
    assert not np.array_equal(other.tx_slots, batch[0].tx_slots)


def test_gilbert_elliott_batch_equals_sequential_rounds() -> None:
    t = Topology.default_testbed()
    src = _sources(t)
    a, b = LossModel(t), LossModel(t)
    for m in (a, b):
        m.set_gilbert_elliott(0.05, 0.3)
    batch = resolve_batch("mixer", t, [src] * 4, range(4), loss=a, seed=1)
    seq = [resolve("mixer", t, src, r, loss=b, seed=1) for r in range(4)]
    for x, y in zip(batch, seq):
        np.testing.assert_array_equal(x.rx_ok_slots, y.rx_ok_slots)
    assert a.describe() == b.describe()
    with pytest.raises(LossError, match="increasing order"):
        resolve("mixer", t, src, 2, loss=a, seed=1)


def test_bad_arguments() -> None:
    t = Topology.line(3)
    with pytest.raises(ValueError, match="protocol"):
        resolve("aloha", t, np.array([0], np.int16), 0)
    with pytest.raises(ValueError, match="node indices"):
        resolve("mixer", t, np.array([0, 5], np.int16), 0)
    with pytest.raises(ValueError, match="alive"):
        resolve("mixer", t, np.array([0], np.int16), 0, alive=np.ones(2, bool))


class _XorBasis:
    """Reference GF(2) span over Python ints (independent of the kernel's RREF)."""

    def __init__(self) -> None:
        self.rows: dict[int, int] = {}  # highest bit -> row

    def reduce(self, v: int) -> int:
        while v:
            h = v.bit_length() - 1
            if h not in self.rows:
                return v
            v ^= self.rows[h]
        return 0

    def add(self, v: int) -> bool:
        v = self.reduce(v)
        if v:
            self.rows[v.bit_length() - 1] = v
        return bool(v)


@pytest.mark.parametrize("g", [5, 40, 70, 130])
def test_incremental_rref_matches_brute_force(g: int) -> None:
    rng = np.random.default_rng(g)
    w = (g + 63) // 64
    basis = np.zeros((1, g, w), np.uint64)
    piv = np.zeros((1, w), np.uint64)
    order = np.zeros((1, g), np.int64)
    rank = np.zeros(1, np.int64)
    ref = _XorBasis()
    for step in range(g + 10):
        # sparse vectors first (partial decoding happens), denser later
        bits = rng.random(g) < (0.03 if step < g // 2 else 0.3)
        v = np.zeros(w, np.uint64)
        as_int = 0
        for i in np.flatnonzero(bits):
            v[i // 64] |= np.uint64(1) << np.uint64(i % 64)
            as_int |= 1 << int(i)
        innovative = _insert(basis, piv, order, rank, 0, v, w, _DEBRUIJN_TABLE)
        assert innovative == ref.add(as_int), step
        assert rank[0] == len(ref.rows)
        for k in range(g):
            row = basis[0, k]
            unit = [(np.uint64(1) << np.uint64(k % 64)) if x == k // 64 else np.uint64(0) for x in range(w)]
            has_pivot = bool((piv[0, k // 64] >> np.uint64(k % 64)) & np.uint64(1))
            decoded = has_pivot and all(row[x] == unit[x] for x in range(w))
            assert decoded == (ref.reduce(1 << k) == 0), (step, k)
