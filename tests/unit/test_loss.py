"""Loss models: statistics against theory, reproducibility, faults and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from protocol.air.loss import LossError, LossModel
from protocol.air.topology import Topology


def _runs(lost: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-d bool array."""
    x = np.concatenate([[False], lost, [False]]).astype(np.int8)
    d = np.diff(x)
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)


def test_bernoulli_drop_rate_within_binomial_interval() -> None:
    m = LossModel(Topology.line(3))
    m.set_bernoulli(0.2)
    ok = m.sample_links(0, 50_000, seed=11)
    for a, b in [(0, 1), (1, 0), (1, 2)]:
        drops = int((~ok[:, a, b]).sum())
        lo, hi = binom.interval(0.999, 50_000, 0.2)
        assert lo <= drops <= hi, (a, b, drops)
    assert not ok[:, 0, 2].any()  # no link, never a reception


def test_bernoulli_per_link_and_base_prr_compose() -> None:
    t = Topology.line(3, prr=0.8)
    m = LossModel(t)
    m.set_bernoulli(0.5, link=(0, 1), directed=True)
    ok = m.sample_links(0, 40_000, seed=2)
    n = 40_000
    for (a, b), p in {(0, 1): 0.4, (1, 0): 0.8, (1, 2): 0.8}.items():
        lo, hi = binom.interval(0.999, n, p)
        assert lo <= ok[:, a, b].sum() <= hi, (a, b)


def test_same_seed_same_drops_other_seed_other_drops() -> None:
    def run(seed: int) -> np.ndarray:
        m = LossModel(Topology.full_mesh(4, prr=0.7))
        m.set_bernoulli(0.1)
        return m.sample_links(7, 500, seed=seed)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_gilbert_elliott_stationary_loss_and_burst_length() -> None:
    p, r = 0.05, 0.2
    m = LossModel(Topology.line(2))
    m.set_gilbert_elliott(p, r)
    lost = ~m.sample_links(0, 400_000, seed=3)[:, 0, 1]
    assert lost.mean() == pytest.approx(p / (p + r), rel=0.05)
    assert _runs(lost).mean() == pytest.approx(1 / r, rel=0.05)
    good_runs = _runs(~lost)
    assert good_runs.mean() == pytest.approx(1 / p, rel=0.05)


def test_gilbert_elliott_partial_loss_per_state() -> None:
    p, r, lg, lb = 0.1, 0.3, 0.05, 0.6
    m = LossModel(Topology.line(2))
    m.set_gilbert_elliott(p, r, loss_good=lg, loss_bad=lb)
    lost = ~m.sample_links(0, 300_000, seed=4)[:, 0, 1]
    pi_b = p / (p + r)
    assert lost.mean() == pytest.approx(pi_b * lb + (1 - pi_b) * lg, rel=0.05)


def test_gilbert_elliott_state_persists_across_rounds() -> None:
    # rounds of 4 slots, mean bursts of 10 slots: bursts must span round boundaries
    r = 0.1
    m = LossModel(Topology.line(2))
    m.set_gilbert_elliott(0.05, r)
    lost = np.concatenate([~m.sample_links(k, 4, seed=5)[:, 0, 1] for k in range(10_000)])
    assert _runs(lost).mean() == pytest.approx(1 / r, rel=0.1)


def test_rounds_in_order_with_gilbert_elliott() -> None:
    m = LossModel(Topology.line(2))
    m.sample_links(5, 10, seed=0)
    m.sample_links(5, 10, seed=0)  # no GE: re-resolving is harmless
    m.set_gilbert_elliott(0.1, 0.1)
    m.sample_links(6, 10, seed=0)
    with pytest.raises(LossError, match="increasing order"):
        m.sample_links(6, 10, seed=0)
    with pytest.raises(LossError, match="increasing order"):
        m.round_view(3)
    m.round_view(7)


def test_link_down_and_up() -> None:
    m = LossModel(Topology.line(3))
    m.link_down(0, 1)
    p = m.static_prr(0)
    assert p[0, 1] == 0 and p[1, 0] == 0 and p[1, 2] == 1
    m.link_up(0, 1)
    m.link_down(0, 1, directed=True)
    p = m.static_prr(0)
    assert p[0, 1] == 0 and p[1, 0] == 1
    m.link_up(1, 0, directed=False)
    assert m.static_prr(0)[0, 1] == 1


def test_node_down_silences_its_links() -> None:
    m = LossModel(Topology.line(3))
    m.node_down(1)
    ok = m.sample_links(0, 50, seed=0)
    assert not ok[:, 1, :].any() and not ok[:, :, 1].any()
    assert list(m.node_up_mask()) == [True, False, True]
    m.node_up(1)
    assert m.node_up_mask().all()


def test_jamming_by_nodes_in_a_round_window() -> None:
    m = LossModel(Topology.line(3))
    jid = m.jam(nodes=[2], prr_factor=0.25, from_round=10, to_round=20)
    assert m.static_prr(9)[1, 2] == 1.0
    assert m.static_prr(10)[1, 2] == 0.25 and m.static_prr(19)[1, 2] == 0.25
    assert m.static_prr(10)[2, 1] == 1.0  # jams receivers, not senders
    assert m.static_prr(20)[1, 2] == 1.0
    view = m.round_view([9, 10, 11, 20])
    assert view.prr(0)[1, 2] == 1.0 and view.prr(1)[1, 2] == 0.25 and view.prr(3)[1, 2] == 1.0
    m.unjam(jid)
    assert m.static_prr(15)[1, 2] == 1.0


def test_jamming_a_region() -> None:
    t = Topology.line(5, spacing_m=10.0)  # x = 0, 10, 20, 30, 40
    m = LossModel(t)
    m.jam(region=(20.0, 0.0, 11.0), prr_factor=0.0)
    p = m.static_prr(0)
    assert p[0, 1] == 0 and p[3, 2] == 0 and p[2, 3] == 0  # receivers 1, 2, 3 jammed
    assert p[1, 0] == 1 and p[3, 4] == 1


def test_describe_and_clear() -> None:
    m = LossModel(Topology.line(3))
    m.set_bernoulli(0.1)
    m.set_gilbert_elliott(0.1, 0.5, link=(0, 1))
    m.link_down(1, 2)
    m.node_down(0)
    m.jam(nodes=[1], prr_factor=0.5)
    kinds = [f["kind"] for f in m.describe()]
    assert kinds.count("bernoulli") == 1 and kinds.count("gilbert_elliott") == 2
    assert kinds.count("link_down") == 2 and "node_down" in kinds and "jam" in kinds
    m.clear()
    assert m.describe() == []
    np.testing.assert_array_equal(m.static_prr(0), m.topology.prr)


@pytest.mark.parametrize(
    "call, msg",
    [
        (lambda m: m.set_bernoulli(1.5), "p must lie in \\[0, 1\\]"),
        (lambda m: m.set_bernoulli(-0.1, link=(0, 1)), "p must lie"),
        (lambda m: m.set_bernoulli(0.1, link=(0, 2)), "no link between 0 and 2"),
        (lambda m: m.link_down(0, 9), "unknown node 9"),
        (lambda m: m.node_down("x"), "integer"),
        (lambda m: m.set_gilbert_elliott(0.1, 0.0), "r \\(bad -> good\\) must be > 0"),
        (lambda m: m.set_gilbert_elliott(0.1, 0.2, loss_bad=2), "loss_bad"),
        (lambda m: m.jam(), "nodes="),
        (lambda m: m.jam(nodes=[1], from_round=5, to_round=5), "empty jam window"),
        (lambda m: m.jam(region=(0, 0, -1)), "radius"),
        (lambda m: m.unjam(3), "no jammer"),
    ],
)
def test_argument_errors(call, msg: str) -> None:
    with pytest.raises(LossError, match=msg):
        call(LossModel(Topology.line(3)))
