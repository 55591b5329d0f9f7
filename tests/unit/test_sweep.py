"""``rocknet sweep`` on a small problem: real node processes for N in {1, 2, 5}."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from coordinator.service.datasets import load_dataset
from coordinator.tools.run_dir import read_run
from coordinator.tools.sweep import SweepOptions, run_sweep
from protocol.config.ram_ledger import ledger
from protocol.config.model import ModelConfig

pytestmark = pytest.mark.usefixtures("warm_numba")

NODES = (1, 2, 5)
CSV_COLUMNS = [
    "dataset", "nodes", "epochs", "optimizer", "features_total", "kernels_per_device",
    "features_per_device", "ram_bytes", "ram_kib", "ram_budget_bytes", "fits",
    "rounds", "train_rounds", "virtual_time_s", "round_latency_s", "train_round_latency_s",
    "train_round_compute_s", "train_round_comm_s", "train_round_slots",
    "energy_per_train_sample_mj", "energy_per_train_sample_mj_max", "cpu_energy_per_train_sample_mj",
    "energy_run_mj_mean",
    "cpu_mj_mean", "tx_mj_mean", "rx_mj_mean", "low_power_mj_mean", "radio_on_s_mean",
    "test_accuracy", "centralized_test_accuracy", "packet_loss_ratio", "wall_time_s", "phase",
]
MODEL = ModelConfig(num_features=2000, epochs=1)


def gunpoint_shape() -> tuple[int, int]:
    ds = load_dataset("GunPoint")
    return ds.series_length, ds.n_classes


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    length, classes = gunpoint_shape()
    # A budget that N=1 exceeds and N=2 meets: the table must say so and still measure N=1.
    n1 = ledger(MODEL, 1, length, classes).total_bytes
    n2 = ledger(MODEL, 2, length, classes).total_bytes
    out = tmp_path_factory.mktemp("sweep")
    opts = SweepOptions(dataset="GunPoint", out_dir=out, nodes=NODES, epochs=1, num_features=2000,
                        baseline=False, ram_budget_bytes=(n1 + n2) // 2)
    result = run_sweep(opts)
    return {"out": out, "rows": result.rows, "files": result.files}


def test_sweep_writes_table_and_plots(sweep: dict) -> None:
    out: Path = sweep["out"]
    for name in ("sweep.csv", "sweep.md", "sweep.json", "sweep_ram.png", "sweep_latency.png",
                 "sweep_energy.png", "sweep_accuracy.png"):
        path = out / name
        assert path.exists() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["nodes"]) for r in rows] == list(NODES)
    assert list(rows[0]) == CSV_COLUMNS  # the file's format, as it has always been
    saved = json.loads((out / "sweep.json").read_text())
    assert [list(r) for r in saved["rows"]] == [CSV_COLUMNS] * len(NODES)
    md = (out / "sweep.md").read_text()
    for png in ("sweep_ram.png", "sweep_latency.png", "sweep_energy.png", "sweep_accuracy.png"):
        assert f"({png})" in md
    assert "reduction N=1 → N=5" in md
    for n in NODES:
        assert (out / "runs" / f"N{n:02d}" / "summary.json").exists()


def test_per_device_ram_decreases_with_n_exactly_as_the_ledger_says(sweep: dict) -> None:
    length, classes = gunpoint_shape()
    rows = sweep["rows"]
    expected = [ledger(MODEL, n, length, classes).total_bytes for n in NODES]
    assert [r.ram_bytes for r in rows] == expected
    assert all(a > b for a, b in zip(expected, expected[1:]))
    # Every device of every run reports its own ledger.
    for n in NODES:
        _, summary, _, _ = read_run(sweep["out"] / "runs" / f"N{n:02d}")
        for node in summary["per_node"]:
            assert node["ram_bytes"] == ledger(MODEL, n, length, classes, device=node["id"]).total_bytes


def test_a_configuration_over_budget_is_flagged_but_still_measured(sweep: dict) -> None:
    rows = {r.nodes: r for r in sweep["rows"]}
    assert not rows[1].fits and rows[2].fits and rows[5].fits
    assert rows[1].phase == "finished" and rows[1].test_accuracy is not None
    assert rows[1].energy_per_train_sample_mj > 0
    md = (sweep["out"] / "sweep.md").read_text()
    n1_line = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert "does not fit" in n1_line
    assert "does not fit" not in next(line for line in md.splitlines() if line.startswith("| 2 |"))


def test_latency_splits_into_compute_and_communication(sweep: dict) -> None:
    rows = sweep["rows"]
    for r in rows:
        assert r.train_round_comm_s > 0 and r.train_round_compute_s > 0
        assert r.train_round_latency_s == pytest.approx(r.train_round_compute_s + r.train_round_comm_s)
        assert r.round_latency_s == pytest.approx(r.virtual_time_s / r.rounds)
    # The compute window is the largest device's work: it shrinks with its kernel count.
    computes = [r.train_round_compute_s for r in rows]
    assert all(a > b for a, b in zip(computes, computes[1:]))


def test_energy_per_round_increments_add_up_to_the_run_totals(sweep: dict) -> None:
    # The per-sample energy comes from the lockstep records' cumulative energies: their
    # increments over all rounds must give each node's total in summary.json.
    for n in NODES:
        _, summary, rounds, _ = read_run(sweep["out"] / "runs" / f"N{n:02d}")
        assert [r["round"] for r in rounds] == list(range(summary["rounds"]))
        last = {node["id"]: node["energy_mj"] for node in rounds[-1]["nodes"]}
        for node in summary["per_node"]:
            assert last[node["id"]] == pytest.approx(node["energy_mj"], abs=1e-5)
    for row in sweep["rows"]:
        assert 0 < row.energy_per_train_sample_mj <= row.energy_per_train_sample_mj_max
        # The CPU share: 3 V x 3.71 mA over the busiest device's modeled MCU seconds per
        # round; part of the largest device's energy.
        _, summary, _, _ = read_run(sweep["out"] / "runs" / f"N{row.nodes:02d}")
        busiest_s = max(p["compute_s_modeled"] for p in summary["per_node"]) / summary["rounds"]
        assert row.cpu_energy_per_train_sample_mj == pytest.approx(busiest_s * 3.0 * 3.71)
        assert row.cpu_energy_per_train_sample_mj < row.energy_per_train_sample_mj_max
        # Under the tuned profile the compute window is the slowest device's work, so the
        # window's CPU energy is nearly the same (calibration and evaluation rounds differ).
        assert row.cpu_energy_per_train_sample_mj == pytest.approx(
            row.train_round_compute_s * 3.0 * 3.71, rel=0.05)
    row = sweep["rows"][-1]
    saved = json.loads((sweep["out"] / "sweep.json").read_text())
    assert saved["rows"][-1]["energy_per_train_sample_mj"] == pytest.approx(row.energy_per_train_sample_mj)


def test_baseline_comparison_row_next_to_a_sweep_point(sweep: dict) -> None:
    from coordinator.tools.baseline import comparison_markdown, comparison_row

    nn = {"dataset": "GunPoint", "test_accuracy": 0.8, "config": {"epochs": 3},
          "ram": {"total_bytes": 2048}, "timing": {"train_sample_s": 0.001, "train_sample_mj": 0.01,
                                                   "training_total_s": 5.0, "training_total_mj": 50.0}}
    alone = comparison_row(nn, None).as_dict()
    assert list(alone) == ["dataset", "nn_test_accuracy", "nn_test_accuracy_best_epoch", "nn_epochs",
                           "nn_ram_bytes", "nn_train_sample_s", "nn_train_sample_mj",
                           "nn_training_total_s", "nn_training_total_mj"]  # baseline.csv, --no-rocknet
    point = sweep["rows"][-1]
    row = comparison_row(nn, point)
    assert list(row.as_dict())[len(alone):] == [
        "rocknet_nodes", "rocknet_epochs", "rocknet_test_accuracy", "rocknet_ram_bytes",
        "rocknet_round_s", "rocknet_train_sample_mj", "rocknet_training_s", "accuracy_ratio"]
    assert row.rocknet_nodes == 5 and row.rocknet_ram_bytes == point.ram_bytes
    assert row.accuracy_ratio == pytest.approx(point.test_accuracy / 0.8)
    assert row.rocknet_training_s == pytest.approx(point.train_round_latency_s * point.train_rounds)
    table = comparison_markdown([comparison_row(nn, None), row])
    assert "| GunPoint | 0.800 | n/a | n/a× |" in table
