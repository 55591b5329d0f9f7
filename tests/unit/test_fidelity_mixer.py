"""The coordinated Mixer (``mixer-coordinated``): the collision model against theory, and
whole rounds (issue 15)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocol.air.radio.mixer import collide
from protocol.air.radio.resolve import resolve
from protocol.air.topology_record import Topology


def _success_rate(q: list[float], trials: int, seed: int) -> float:
    rng = np.array([np.uint64(seed * 2654435761 + 12345)], dtype=np.uint64)
    p = np.array(q, dtype=np.float64)
    return sum(collide(p, len(q), rng) >= 0 for _ in range(trials)) / trials


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_one_hop_k_senders_success_is_k_q_one_minus_q_to_the_k_minus_1(k: int) -> None:
    q, trials = 0.7, 20_000
    theory = k * q * (1 - q) ** (k - 1)
    got = _success_rate([q] * k, trials, seed=k)
    sigma = math.sqrt(theory * (1 - theory) / trials)
    assert abs(got - theory) <= 4 * sigma + 1e-12


def test_unequal_links_success_is_one_arrival_exactly() -> None:
    q = [0.9, 0.5, 0.2]
    theory = sum(q[j] * math.prod(1 - q[i] for i in range(3) if i != j) for j in range(3))
    trials = 20_000
    got = _success_rate(q, trials, seed=7)
    assert abs(got - theory) <= 4 * math.sqrt(theory * (1 - theory) / trials)


def test_the_arriving_sender_is_returned() -> None:
    rng = np.array([np.uint64(99)], dtype=np.uint64)
    assert collide(np.array([0.0, 1.0, 0.0]), 3, rng) == 1
    assert collide(np.array([1.0, 1.0]), 2, rng) == -1  # two arrive: a collision


def test_coordinated_round_tx_share_follows_owner_plus_density_and_delivers_most() -> None:
    # full mesh of n = 10, PRR 1: a synced node owns 1/n of the slots and sends in the others
    # with 1 / (d + 1) = 1/n, so it sends in 1/n + (1 - 1/n)/n = 0.19 of its slots.
    n = 10
    topo = Topology.full_mesh(n, prr=1.0)
    sources = np.arange(n, dtype=np.int16)  # one packet per node
    shares, delivered = [], []
    for seed in range(6):
        r = resolve("mixer-coordinated", topo, sources, round_no=0, seed=seed)
        assert np.all(r.tx_slots + r.rx_slots + r.off_slots == r.n_slots)
        on = r.tx_slots + r.rx_slots
        shares.append(r.tx_slots.sum() / on.sum())
        delivered.append(r.decoded.mean())
    theory = 1 / n + (1 - 1 / n) / n
    assert abs(float(np.mean(shares)) - theory) < 0.04
    assert float(np.mean(delivered)) > 0.8
    legacy = resolve("mixer", topo, sources, round_no=0, seed=0)
    assert legacy.tx_slots.sum() / (legacy.tx_slots.sum() + legacy.rx_slots.sum()) > 0.3
