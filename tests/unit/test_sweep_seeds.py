"""``rocknet sweep --seeds K``: one run per seed and N, a table of mean and std per N."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from coordinator.ui.cli import main


@pytest.mark.usefixtures("warm_numba")
def test_sweep_with_seeds_writes_mean_and_std_per_n(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    code = main(["sweep", "--dataset", "GunPoint", "--nodes", "2,5", "--epochs", "1", "--seeds", "3",
                 "--backend", "inprocess", "--no-baseline", "--num-features", "1000", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader((out / "sweep_seeds.csv").open()))
    assert [r["nodes"] for r in rows] == ["2", "5"] and all(r["seeds"] == "3" for r in rows)
    for r in rows:
        n = int(r["nodes"])
        accs = [json.loads((out / "runs" / f"N{n:02d}" / f"seed{k}" / "summary.json").read_text())
                ["test_accuracy"] for k in range(3)]
        assert float(r["test_accuracy_mean"]) == pytest.approx(np.mean(accs))
        assert float(r["test_accuracy_std"]) == pytest.approx(np.std(accs))
    md = (out / "sweep_seeds.md").read_text()
    assert "±" in md and "| 2 | 3 |" in md and "| 5 | 3 |" in md
    assert (out / "seeds_test_accuracy.png").stat().st_size > 0


@pytest.mark.usefixtures("warm_numba")
def test_sweep_across_two_datasets_writes_one_table_and_plot_per_measure(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    code = main(["sweep", "--datasets", "UnitTest,ItalyPowerDemand", "--nodes", "1,2", "--epochs", "1",
                 "--seeds", "2", "--backend", "inprocess", "--no-baseline", "--num-features", "500",
                 "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader((out / "datasets.csv").open()))
    assert [(r["dataset"], r["nodes"]) for r in rows] == [
        ("UnitTest", "1"), ("UnitTest", "2"), ("ItalyPowerDemand", "1"), ("ItalyPowerDemand", "2")]
    for r in rows:  # the cross-dataset table holds each dataset's own seed aggregate
        own = {s["nodes"]: s for s in csv.DictReader((out / r["dataset"] / "sweep_seeds.csv").open())}
        assert r["test_accuracy_mean"] == own[r["nodes"]]["test_accuracy_mean"]
        accs = [json.loads((out / r["dataset"] / "runs" / f"N{int(r['nodes']):02d}" / f"seed{s}"
                            / "summary.json").read_text())["test_accuracy"] for s in (0, 1)]
        assert float(r["test_accuracy_mean"]) == pytest.approx(np.mean(accs))
    md = (out / "datasets.md").read_text()
    assert "## test accuracy, mean ± std over 2 seeds" in md and "| ItalyPowerDemand |" in md
    assert "| dataset | N=1 | N=2 |" in md
    for measure in ("test_accuracy", "ram_kib", "energy_per_train_sample_mj"):
        assert (out / f"datasets_{measure}.png").stat().st_size > 0


def test_unknown_datasets_are_named_with_the_bundled_ones_and_data_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", "--datasets", "UnitTest,NoSuchSet,Nope2", "--nodes", "1",
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert "'NoSuchSet', 'Nope2'" in err and "GunPoint" in err and "--data-dir" in err
    assert not (tmp_path / "x").exists()  # nothing ran
    code = main(["sweep", "--dataset", "GunPoint", "--datasets", "UnitTest", "--out", str(tmp_path / "y")])
    assert code == 2 and "not both" in capsys.readouterr().err


def test_datasets_all_is_every_bundled_dataset() -> None:
    from coordinator.service.datasets import bundled_datasets
    from coordinator.tools.sweep_datasets import resolve_datasets

    assert resolve_datasets(["all"]) == tuple(bundled_datasets())
    assert "ItalyPowerDemand" in resolve_datasets(["all"])
