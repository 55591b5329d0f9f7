"""The examples/ scripts run (tiny setting) and the Python API returns a typed result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coordinator.api import run_experiment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("warm_numba")
def test_run_experiment_returns_the_summary_typed(tmp_path: Path) -> None:
    r = run_experiment(dataset="GunPoint", nodes=3, epochs=1, num_features=1000,
                       split="label-sorted", out=tmp_path / "r")
    assert (r.nodes, r.epochs, r.split, r.phase) == (3, 1, "label-sorted", "finished")
    assert r.test_accuracy == r.centralized_test_accuracy  # distributed == centralized
    assert sum(map(sum, r.label_histograms)) == 50  # GunPoint's training set
    with pytest.raises(ValueError, match="unknown run argument"):
        run_experiment(nodez=3)


def test_the_noniid_example_runs(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "noniid_comparison.py"),
                           str(tmp_path), "1"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("accuracy") == 4
    assert "label-sorted" in done.stdout


def _script(name: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_seed_sweep_example_runs(tmp_path: Path) -> None:
    out = _script("seed_sweep.py", str(tmp_path), "2", "1")
    assert out.count("seed ") == 2 and "over 2 seeds" in out and "±" in out


def test_the_jamming_example_loses_packets_only_when_jammed(tmp_path: Path) -> None:
    lines = dict(line.split(" ", 1) for line in _script("jamming.py", str(tmp_path), "1").splitlines())
    clean_loss = float(lines["clean"].split("packet loss")[1])
    jammed_loss = float(lines["jammed"].split("packet loss")[1])
    assert jammed_loss > clean_loss


@pytest.mark.usefixtures("warm_numba")
def test_run_experiment_on_the_process_backend(tmp_path: Path) -> None:
    r = run_experiment(backend="processes", dataset="GunPoint", nodes=3, epochs=1,
                       num_features=1000, split="iid", out=tmp_path / "p")
    assert (r.phase, r.nodes, r.split) == ("finished", 3, "iid")
    assert r.test_accuracy == r.centralized_test_accuracy
