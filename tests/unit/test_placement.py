"""Data placement (``--split``): which device holds which sample, and the equivalence with
the centralized reference for every placement."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.backends.inprocess import in_process_run
from coordinator.engine.engine import EngineOptions
from coordinator.service.datasets import load_dataset
from coordinator.service.run_setup import RunArgs, SetupError, build_setup
from coordinator.service.summary import build_summary
from node.offline.reference import train_reference
from protocol.stream.placement import label_histograms, parse_split, placement_order
from protocol.stream.schedule import ScheduleConfig, contiguous_split

SPLITS = ["contiguous", "iid", "label-sorted", "dirichlet:0.3"]


def labels() -> np.ndarray:
    return np.asarray(load_dataset("GunPoint", None).y_train, dtype=np.int64)


@pytest.mark.parametrize("split", SPLITS)
def test_every_placement_is_a_permutation_with_contiguous_sizes(split: str) -> None:
    y = labels()
    order = placement_order(y, 5, split, seed=3)
    assert sorted(order.tolist()) == list(range(len(y)))
    hist = label_histograms(y[order], 5, 2)
    sizes = [b - a for a, b in contiguous_split(len(y), 5)]
    assert [sum(h) for h in hist] == sizes
    assert np.array_equal(np.sum(hist, axis=0), np.bincount(y, minlength=2))
    # Pure: the same from the same seed.
    assert np.array_equal(order, placement_order(y, 5, split, seed=3))


def test_label_sorted_gives_each_device_one_class_but_the_boundary_one() -> None:
    y = labels()
    hist = label_histograms(y[placement_order(y, 5, "label-sorted", 0)], 5, 2)
    mixed = [h for h in hist if min(h) > 0]
    assert len(mixed) <= 1  # only the device holding the class boundary sees both
    contiguous = label_histograms(y, 5, 2)
    assert sum(min(h) > 0 for h in contiguous) >= 3  # GunPoint's own order is mixed


def test_iid_differs_by_seed_and_is_not_the_identity() -> None:
    y = labels()
    a, b = placement_order(y, 5, "iid", 0), placement_order(y, 5, "iid", 1)
    assert not np.array_equal(a, np.arange(len(y)))
    assert not np.array_equal(a, b)


def test_dirichlet_small_alpha_is_more_skewed_than_large_alpha() -> None:
    y = np.repeat(np.arange(4), 100)

    def skew(alpha: float) -> float:
        # Mean over devices and seeds of the largest class share on a device.
        shares = []
        for seed in range(5):
            for h in label_histograms(y[placement_order(y, 8, f"dirichlet:{alpha}", seed)], 8, 4):
                shares.append(max(h) / sum(h))
        return float(np.mean(shares))

    assert skew(0.1) > 0.6  # equal quotas cap the skew (classes run out); IID is ~0.3
    assert skew(100.0) < 0.45
    assert skew(0.1) > skew(1.0) > skew(100.0)


@pytest.mark.parametrize("bad", ["random", "dirichlet:", "dirichlet:-1", "dirichlet:x", "dirichlet:nan"])
def test_bad_split_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="dirichlet"):
        parse_split(bad)
    with pytest.raises(SetupError, match="split"):
        build_setup(RunArgs(dataset="GunPoint", nodes=2, epochs=1, split=bad))
    with pytest.raises(ValueError, match="split"):
        ScheduleConfig(n_train=4, n_test=0, n_devices=1, epochs=1, batch_size=2, placement=bad)


@pytest.mark.usefixtures("warm_numba")
@pytest.mark.parametrize("split", SPLITS)
def test_distributed_equals_the_reference_bitwise_for_every_placement(split: str) -> None:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=3, epochs=1, num_features=1000,
                                batch_size=16, split=split, seed=2))
    run = in_process_run(setup, EngineOptions(lockstep=False, down_after=10**9))
    engine = run.run()
    devices = [agent.device for agent in run.agents]
    ref = train_reference(setup.x_train, setup.y_train, setup.x_test, setup.y_test,
                          setup.config.n_classes, setup.config.model, 3, setup.config.schedule)
    for dev, w in zip(devices, ref.weights):
        assert dev.head.W.tobytes() == w.tobytes()
    assert devices[0].head.b.tobytes() == ref.bias.tobytes()
    # Each device holds exactly its placed samples, and the summary records them.
    summary = build_summary(engine, setup, 1.0, ref.test_accuracy).to_json()
    assert summary["split"] == split
    y = labels()
    expected = label_histograms(y[placement_order(y, 3, split, 2)], 3, 2)
    assert [n["train_label_histogram"] for n in summary["per_node"]] == expected
    for dev, h in zip(devices, expected):
        assert np.bincount(dev.data.y_train, minlength=2).tolist() == h
