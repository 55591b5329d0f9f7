"""The coordinated Mixer (``mixer-coordinated``): the capture model against theory, smart
shutdown mode 2, sync loss and whole rounds (issue 15)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocol.air.radio.capture import BLE_2M_CO_CHANNEL_DB, CaptureModel, capture, link_power_mw
from protocol.air.radio.resolve import resolve, resolve_batch
from protocol.air.topology_record import Topology

RATIO = CaptureModel().ratio  # 7 dB


def _rate(q: list[float], w: list[float], trials: int, seed: int, ratio: float = RATIO) -> float:
    rng = np.array([np.uint64(seed * 2654435761 + 12345)], dtype=np.uint64)
    p, pw = np.array(q, dtype=np.float64), np.array(w, dtype=np.float64)
    return sum(capture(p, pw, len(q), ratio, rng) >= 0 for _ in range(trials)) / trials


def _within_binomial(got: float, theory: float, trials: int) -> bool:
    return abs(got - theory) <= 4 * math.sqrt(theory * (1 - theory) / trials) + 1e-12


@pytest.mark.parametrize("k", [2, 3, 5])
def test_equal_powers_above_0_db_nothing_is_received_when_two_or_more_send(k: int) -> None:
    assert _rate([1.0] * k, [1e-6] * k, 2_000, seed=k) == 0.0
    # any threshold above 0 dB: SIR of k equal senders is -10 log10(k - 1) <= 0 dB
    assert _rate([1.0] * k, [1e-6] * k, 500, seed=k, ratio=CaptureModel(0.1).ratio) == 0.0


@pytest.mark.parametrize("q", [0.3, 0.8])
def test_one_sender_succeeds_with_its_prr(q: float) -> None:
    trials = 20_000
    assert _within_binomial(_rate([q], [1e-9], trials, seed=11), q, trials)


def test_one_dominant_sender_succeeds_with_its_prr_the_weak_ones_do_not_matter() -> None:
    # powers 1 : 0.02 : 0.02 (SIR 10 log10(1 / 0.04) = 14 dB >= 7 dB): success = q of the strong
    trials = 20_000
    got = _rate([0.6, 1.0, 1.0], [1.0, 0.02, 0.02], trials, seed=3)
    assert _within_binomial(got, 0.6, trials)
    # the strong one below the threshold over the others' sum (SIR 10 log10(1 / 0.4) = 4 dB)
    assert _rate([1.0, 1.0, 1.0], [1.0, 0.2, 0.2], 2_000, seed=4) == 0.0
    # exactly at the threshold: captured (>=)
    assert _rate([1.0, 1.0], [RATIO, 1.0], 200, seed=5) == 1.0


def test_the_captured_sender_is_the_strongest() -> None:
    rng = np.array([np.uint64(99)], dtype=np.uint64)
    assert capture(np.array([1.0, 1.0, 1.0]), np.array([0.01, 1.0, 0.01]), 3, RATIO, rng) == 1
    assert capture(np.array([1.0]), np.array([1.0]), 0, RATIO, rng) == -1


def test_capture_model_checks_its_threshold() -> None:
    assert BLE_2M_CO_CHANNEL_DB == CaptureModel().threshold_db
    with pytest.raises(ValueError, match="threshold_db"):
        CaptureModel(-1.0)
    with pytest.raises(ValueError, match="threshold_db"):
        CaptureModel(float("nan"))


def test_link_powers_follow_the_log_distance_model() -> None:
    topo = Topology.line(3, spacing_m=10.0)
    mw = link_power_mw(topo)
    assert mw[0, 0] == 0.0
    # 0 dBm - 40 dB - 35 log10(10) = -75 dBm at 10 m; 35 log10(2) = 10.5 dB less at 20 m
    assert math.isclose(10 * math.log10(mw[0, 1]), -75.0, abs_tol=1e-9)
    assert math.isclose(10 * math.log10(mw[0, 1] / mw[0, 2]), 35 * math.log10(2), abs_tol=1e-9)


def _two_slot_rounds(q: float, power_dbm: np.ndarray, seeds: int) -> np.ndarray:
    """rx_ok_slots of node 2 in two-slot rounds of a 3-node mesh (sources all at node 0).

    Slot 0: only the initiator 0 sends. Slot 1: 0 sends again (the firmware's slot-2
    exception) and node 1 owns the slot; node 2 (which never heard 1: a concurrent slot,
    density 2) sends with 1/3 if synced, so it listens to two concurrent senders with
    probability 2/3 (synced) or 1 (not synced). Link 0 -> 2 has PRR q, every other link 1.
    """
    prr = np.ones((3, 3)) - np.eye(3)
    prr[0, 2] = q
    topo = Topology(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), ("compute",) * 3, prr, 0)
    src = np.zeros(3, dtype=np.int16)
    return np.array([resolve("mixer-coordinated", topo, src, 0, seed=s, n_slots=2,
                             rx_power_dbm=power_dbm).rx_ok_slots[2] for s in range(seeds)])


def test_rounds_two_equal_concurrent_senders_are_never_decoded() -> None:
    ok = _two_slot_rounds(1.0, np.full((3, 3), -70.0), seeds=300)
    assert np.all(ok == 1)  # slot 0 (one sender) always, slot 1 (two equal senders) never


def test_rounds_one_dominant_sender_is_decoded_with_its_prr() -> None:
    q, seeds = 0.6, 3000
    power = np.full((3, 3), -90.0)
    power[0, 2] = -60.0  # 30 dB over node 1 at node 2
    ok = _two_slot_rounds(q, power, seeds)
    # slot 0: q; slot 1: q x P(listen) with P(listen) = 2/3 after a slot-0 reception, else 1
    p_b = np.array([q * (2 / 3), q])  # given slot 0 succeeded / failed
    mean = q + q * p_b[0] + (1 - q) * p_b[1]
    second = q * (1 + 3 * p_b[0]) + (1 - q) * p_b[1]  # E[X^2] with X = A + B
    sigma = math.sqrt((second - mean ** 2) / seeds)
    assert abs(float(ok.mean()) - mean) <= 4 * sigma


def test_coordinated_round_tx_share_follows_owner_plus_density_and_delivers_most() -> None:
    # full mesh of n = 10, PRR 1: a node owns 1/n of the slots; once it has heard a slot's
    # owner it keeps silent in that slot (foreign slot), so after the first round-robin cycle
    # only owners send: the TX share tends to 1/n from above (startup owners, early
    # concurrent slots while the history is still empty).
    n = 10
    topo = Topology.full_mesh(n, prr=1.0)
    sources = np.arange(n, dtype=np.int16)  # one packet per node
    shares, delivered = [], []
    for seed in range(6):
        r = resolve("mixer-coordinated", topo, sources, round_no=0, seed=seed, smart_shutdown=False)
        assert np.all(r.tx_slots + r.rx_slots + r.off_slots == r.n_slots)
        on = r.tx_slots + r.rx_slots
        shares.append(r.tx_slots.sum() / on.sum())
        delivered.append(r.decoded.mean())
    assert 1 / n <= float(np.mean(shares)) < 1 / n + 0.04
    assert float(np.mean(delivered)) > 0.95
    legacy = resolve("mixer", topo, sources, round_no=0, seed=0)
    assert legacy.tx_slots.sum() / (legacy.tx_slots.sum() + legacy.rx_slots.sum()) > 0.3


def test_smart_shutdown_mode_2_saves_tx_slots_without_losing_delivery_lossless() -> None:
    topo = Topology.line(4, prr=1.0)
    src = np.arange(4, dtype=np.int16)
    tx_on, tx_off = 0, 0
    for seed in range(10):
        shut = resolve("mixer-coordinated", topo, src, 0, seed=seed)
        stay = resolve("mixer-coordinated", topo, src, 0, seed=seed, smart_shutdown=False)
        assert shut.complete and stay.complete
        assert shut.decoded.all() and stay.decoded.all()
        assert shut.off_slots.sum() > 0 and stay.off_slots.sum() == 0
        tx_on += int(shut.tx_slots.sum())
        tx_off += int(stay.tx_slots.sum())
    assert tx_on < 0.8 * tx_off


def test_a_node_that_never_hears_anyone_listens_every_slot_through() -> None:
    # the initiator is dead: nobody synchronizes, every alive node listens all 150 slots
    topo = Topology.line(3, prr=1.0)
    alive = np.array([False, True, True])
    r = resolve("mixer-coordinated", topo, np.array([0, 1, 2], dtype=np.int16), 0, alive=alive)
    assert r.rx_listen_slots.tolist() == [0, r.n_slots, r.n_slots]
    assert r.rx_slots.tolist() == [0, r.n_slots, r.n_slots] and r.tx_slots.sum() == 0


def test_sync_loss_after_silent_slots_makes_a_node_listen_slots_through() -> None:
    # node 1 hears the initiator over a weak link (PRR 0.05): after its first reception it
    # often goes 20 slots without one, loses its sync and listens through until the next.
    prr = np.array([[0.0, 0.05], [1.0, 0.0]])
    topo = Topology(np.array([[0.0, 0.0], [10.0, 0.0]]), ("compute", "compute"), prr, 0)
    src = np.array([0, 1], dtype=np.int16)
    kept, lost = 0, 0
    for seed in range(10):
        never = resolve("mixer-coordinated", topo, src, 0, seed=seed, smart_shutdown=False, resync_after=0)
        first = int(never.rx_listen_slots[1])  # only before node 1's first reception
        assert first < never.n_slots and never.rx_ok_slots[1] >= 1
        again = resolve("mixer-coordinated", topo, src, 0, seed=seed, smart_shutdown=False)
        kept += first
        lost += int(again.rx_listen_slots[1])
    assert lost > kept


def test_coordinated_rounds_are_deterministic_and_batch_equals_one_by_one() -> None:
    topo = Topology.default_testbed()
    src = np.concatenate([[0], np.arange(20)]).astype(np.int16)
    batch = resolve_batch("mixer-coordinated", topo, [src] * 3, [4, 5, 6], seed=9)
    for r, b in zip([4, 5, 6], batch):
        one = resolve("mixer-coordinated", topo, src, r, seed=9)
        again = resolve("mixer-coordinated", topo, src, r, seed=9)
        for name in ("decoded", "tx_slots", "rx_slots", "rx_ok_slots", "rx_listen_slots", "off_slots"):
            assert np.array_equal(getattr(one, name), getattr(b, name))
            assert np.array_equal(getattr(one, name), getattr(again, name))


def test_rx_power_matrix_is_checked() -> None:
    topo = Topology.line(3)
    with pytest.raises(ValueError, match="shape"):
        resolve("mixer-coordinated", topo, np.array([0], dtype=np.int16), 0, rx_power_dbm=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="resync_after"):
        resolve("mixer-coordinated", topo, np.array([0], dtype=np.int16), 0, resync_after=-1)
