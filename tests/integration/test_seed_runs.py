"""``rocknet run|compare --seeds K``: one run per seed in a worker pool, mean ± std on top."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from coordinator.tools.run_pool import concurrent_runs, processes_per_run
from coordinator.ui.cli import main

pytestmark = pytest.mark.usefixtures("warm_numba")

REPO = Path(__file__).resolve().parents[2]
TINY = ["--dataset", "GunPoint", "--nodes", "2", "--epochs", "1", "--num-features", "1000"]


def _accuracies(out: Path, seeds: range) -> list[float]:
    return [json.loads((out / f"seed{s}" / "summary.json").read_text())["test_accuracy"] for s in seeds]


def test_run_with_seeds_writes_k_directories_and_the_aggregate_parallel_equals_sequential(
        tmp_path: Path) -> None:
    par, seq = tmp_path / "par", tmp_path / "seq"
    assert main(["run", *TINY, "--seed", "3", "--seeds", "3", "--jobs", "3", "--backend", "inprocess",
                 "--quiet", "--out", str(par)]) == 0
    assert main(["run", *TINY, "--seed", "3", "--seeds", "3", "--jobs", "1", "--backend", "inprocess",
                 "--quiet", "--out", str(seq)]) == 0
    assert sorted(p.name for p in par.iterdir() if p.is_dir()) == ["seed3", "seed4", "seed5"]
    for s in (3, 4, 5):
        summary = json.loads((par / f"seed{s}" / "summary.json").read_text())
        config = json.loads((par / f"seed{s}" / "config.json").read_text())
        assert summary["phase"] == "finished" and config["args"]["seed"] == s
        a, b = np.load(par / f"seed{s}" / "weights.npz"), np.load(seq / f"seed{s}" / "weights.npz")
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)  # parallel == sequential, bitwise
    accs = _accuracies(par, range(3, 6))
    assert accs == _accuracies(seq, range(3, 6))
    rows = list(csv.DictReader((par / "seeds.csv").open()))
    assert [r["seed"] for r in rows] == ["3", "4", "5", "mean", "std"]
    assert [float(r["test_accuracy"]) for r in rows[:3]] == accs
    assert float(rows[3]["test_accuracy"]) == pytest.approx(np.mean(accs))
    assert float(rows[4]["test_accuracy"]) == pytest.approx(np.std(accs))
    md = (par / "seeds.md").read_text()
    assert "mean ± std (3 seeds)" in md and f"{np.mean(accs):.4g} ± " in md
    assert json.loads((par / "seeds.json").read_text())["seeds"] == [3, 4, 5]


def test_pool_size_follows_the_cores_and_the_processes_of_a_run() -> None:
    assert processes_per_run(5, in_process=False) == 6 and processes_per_run(5, in_process=True) == 1
    assert concurrent_runs([1] * 8, cpus=2) == 2  # in-process runs: one per core
    assert concurrent_runs([6] * 3, cpus=16) == 2  # N=5 process runs: 6 processes each
    assert concurrent_runs([6] * 3, cpus=2) == 1  # one always runs
    assert concurrent_runs([6] * 3, jobs=3, cpus=2) == 3  # --jobs overrides
    assert concurrent_runs([1] * 2, jobs=8) == 2  # never more than there are runs


def _two_running_seeds(out: Path) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    """``rocknet run --seeds 2 --jobs 2`` of long process-backend runs, once both run."""
    cmd = [sys.executable, "-m", "coordinator.ui.cli", "run", "--dataset", "GunPoint", "--nodes", "2",
           "--epochs", "5000", "--num-features", "1000", "--seeds", "2", "--jobs", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    started, log = 0, []
    for line in proc.stderr:  # both runs log their start: every process of them exists
        log.append(line)
        started += "event run_started" in line
        if started == 2:
            break
    assert started == 2, "".join(log[-30:])
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert len(tree) >= 2 + 2 * 2  # two workers, their zygotes and nodes
    return proc, tree


def test_a_killed_caller_takes_every_worker_and_node_with_it(tmp_path: Path) -> None:
    proc, tree = _two_running_seeds(tmp_path / "runs")
    proc.kill()  # SIGKILL: nothing of the caller runs any more
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


def test_sigterm_stops_every_seed_run_and_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc, tree = _two_running_seeds(out)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive, [p.cmdline() for p in alive]
    assert time.monotonic() - t0 < 10
    for s in (0, 1):  # each run stopped as rocknet run does: its summary written
        summary = json.loads((out / f"seed{s}" / "summary.json").read_text())
        assert summary["stop_reason"] == "signal SIGTERM"


def test_compare_with_seeds_gives_mean_and_std_per_mode(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", *TINY, "--modes", "rocknet,private-labels", "--seeds", "2",
                 "--backend", "inprocess", "--quiet", "--out", str(out)]) == 0
    rows = {r["mode"]: r for r in csv.DictReader((out / "compare_seeds.csv").open())}
    assert sorted(rows) == ["private-labels", "rocknet"]
    for mode, row in rows.items():
        assert (row["seeds"], row["finished"]) == ("2", "2")
        summaries = [json.loads((out / mode / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
        accs = [s["test_accuracy"] for s in summaries]
        assert float(row["test_accuracy_mean"]) == pytest.approx(np.mean(accs))
        assert float(row["test_accuracy_std"]) == pytest.approx(np.std(accs))
        lat = [1e3 * s["per_train_sample"]["latency_s"] for s in summaries]
        assert float(row["latency_ms_per_sample_mean"]) == pytest.approx(np.mean(lat))
    # the labels stay with their owners, the model is the same: equal accuracy seed by seed
    assert rows["rocknet"]["test_accuracy_mean"] == rows["private-labels"]["test_accuracy_mean"]
    md = (out / "compare_seeds.md").read_text()
    assert "| rocknet | 2 | 2 |" in md and "±" in md
    assert (out / "compare_seeds.png").stat().st_size > 0 and (out / "compare.md").exists()
