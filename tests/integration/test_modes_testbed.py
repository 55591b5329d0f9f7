"""The training modes with real node processes and real sockets (docs/modes.md)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from coordinator.tools.compare import CompareOptions, run_comparison
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.server import CoordinatorOptions, RunAborted
from coordinator.service.run_setup import RunArgs, build_setup
from inprocess import assert_weights_file_equals, reference_of

pytestmark = pytest.mark.usefixtures("warm_numba")


def options(tmp_path: Path, **kw) -> LaunchOptions:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                               lockstep=kw.pop("lockstep", False))
    return LaunchOptions(out_dir=tmp_path / "run", coordinator=coord, progress=False,
                         reference=False, **kw)


def test_private_labels_processes_train_bitwise_the_default_model(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=20, epochs=2, num_features=2000, mode="private-labels")
    summary = run_testbed(args, options(tmp_path))
    assert summary["phase"] == "finished" and summary["training_mode"] == "private-labels"
    # The default mode equals the centralized reference bitwise (tests/integration/test_testbed.py), so
    # this is the default mode's model.
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=20, epochs=2, num_features=2000))
    ref = reference_of(setup)
    assert_weights_file_equals(tmp_path / "run" / "weights.npz", ref, 20)
    # Only owners know labels: their counts add up to the whole test set and its accuracy.
    assert summary["test_scored"] == len(setup.y_test)
    assert summary["test_accuracy"] == pytest.approx(ref.test_accuracy)
    # One bubble round per optimizer step, and g on the air: more rounds and bytes per sample
    # than the default mode's one round per sample, but of the same order.
    assert summary["rounds"] == setup.stream.n_rounds + setup.stream.steps
    per = summary["per_train_sample"]
    assert 1.0 < per["rounds"] < 1.5 and per["bytes_on_air"] > 0


def test_data_parallel_is_refused_at_256_kib_with_the_way_to_run_it(tmp_path: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=2, epochs=1, mode="data-parallel")  # 9,660 features
    with pytest.raises(RunAborted, match=r"data-parallel: every device holds the whole model.*"
                                         r"--ram-budget \d+"):
        run_testbed(args, options(tmp_path))


def test_compare_gunpoint_20_nodes_rocknet_sends_far_fewer_bytes_than_data_parallel(tmp_path: Path) -> None:
    out = tmp_path / "compare"
    rows = run_comparison(CompareOptions(
        dataset="GunPoint", nodes=20, epochs=1, num_features=2000,
        modes=("rocknet", "data-parallel"), out_dir=out,
    ))
    by_mode = {r["mode"]: r for r in rows}
    rock, dp = by_mode["rocknet"], by_mode["data-parallel"]
    assert rock["phase"] == dp["phase"] == "finished"
    assert rock["bytes_on_air_per_sample"] * 3 < dp["bytes_on_air_per_sample"]
    assert rock["rounds_per_sample"] < dp["rounds_per_sample"]
    assert rock["energy_mj_per_device_per_sample"] < dp["energy_mj_per_device_per_sample"]
    assert rock["peak_ram_bytes"] < dp["peak_ram_bytes"]
    assert dp["ram_budget_lifted"] and not rock["ram_budget_lifted"]
    # The table is the runs' own numbers.
    for mode, row in by_mode.items():
        summary = json.loads((out / mode / "summary.json").read_text())
        assert row["bytes_on_air_per_sample"] == summary["per_train_sample"]["bytes_on_air"]
        assert row["test_accuracy"] == summary["test_accuracy"]
        assert row["peak_ram_bytes"] == max(n["ram_bytes"] for n in summary["per_node"])
        assert summary["train_samples"] == 50
    with open(out / "compare.csv") as fh:
        table = {r["mode"]: r for r in csv.DictReader(fh)}
    assert float(table["data-parallel"]["bytes_on_air_per_sample"]) == dp["bytes_on_air_per_sample"]
    assert "| rocknet |" in (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 10_000
