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
