"""A run from an experiment file, with a flag on the command line on top of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.ui.cli import main

pytestmark = pytest.mark.usefixtures("warm_numba")


def test_a_run_from_a_file_with_a_flag_on_top(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('nodes = 5\ndataset = "GunPoint"\nepochs = 2\nnum-features = 1000\n'
                    'backend = "inprocess"\n')
    out = tmp_path / "run"
    assert main(["run", "--config", str(path), "--epochs", "3", "--quiet", "--out", str(out),
                 "--node-port", "0", "--feed-port", "0", "--control-port", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["nodes"], summary["epochs"], summary["phase"]) == (5, 3, "finished")
    assert json.loads((out / "config.json").read_text())["args"]["epochs"] == 3
