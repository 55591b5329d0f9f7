"""The same run on two backends: node processes over ZeroMQ and devices in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.run_setup import RunArgs
from coordinator.service.server import CoordinatorOptions

pytestmark = pytest.mark.usefixtures("warm_numba")


def launch(out: Path, in_process: bool) -> LaunchOptions:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0, in_process=in_process)
    return LaunchOptions(out_dir=out, coordinator=coord, progress=False, reference=False)


def test_twenty_devices_at_50_percent_loss_train_bitwise_the_same_in_process_and_faster(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=20, epochs=2, loss=0.5, num_features=2000, seed=3)
    processes = run_testbed(args, launch(tmp_path / "processes", in_process=False))
    inprocess = run_testbed(args, launch(tmp_path / "inprocess", in_process=True))
    for summary in (processes, inprocess):
        assert summary["phase"] == "finished" and summary["rounds"] == summary["rounds_planned"]
        assert all(n["final_collected"] for n in summary["per_node"])
    assert processes["packet_loss_ratio"] > 0  # the loss did bite
    with np.load(tmp_path / "processes" / "weights.npz") as a, np.load(tmp_path / "inprocess" / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files) and len(a.files) >= 20
        for key in a.files:
            assert np.array_equal(a[key], b[key]), f"{key} differs between the backends"
    assert [n["lost_packets"] for n in processes["per_node"]] == [n["lost_packets"] for n in inprocess["per_node"]]
    assert processes["test_accuracy"] == inprocess["test_accuracy"]
    assert processes["virtual_time_s"] == pytest.approx(inprocess["virtual_time_s"], rel=1e-12)
    assert inprocess["wall_time_s"] < processes["wall_time_s"]
