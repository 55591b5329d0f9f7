"""``rocknet report``: figures and a one-page summary of a short real run with faults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from coordinator.service.scenario import load_scenario
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.run_setup import RunArgs
from coordinator.service.server import CoordinatorOptions
from coordinator.tools.report import (
    FIGURES,
    epoch_curves,
    main,
    make_report,
    round_start_times,
)
from coordinator.tools.run_dir import read_run

pytestmark = pytest.mark.usefixtures("warm_numba")

SCENARIO = """
[[event]]
at_round = 60
command = "jam"
nodes = [0, 1]
prr = 0.0
rounds = 20

[[event]]
at_round = 120
command = "loss"
p = 0.2
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    scenario_file = base / "scenario.toml"
    scenario_file.write_text(SCENARIO)
    out = base / "run"
    args = RunArgs(dataset="GunPoint", nodes=3, epochs=2, num_features=1000, eval_every=1)
    launch = LaunchOptions(out_dir=out, coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0),
                           reference=False, progress=False, scenario=load_scenario(scenario_file))
    summary = run_testbed(args, launch)
    assert summary["phase"] == "finished"
    return out


def test_report_writes_non_empty_pngs_and_names_them(run_dir: Path) -> None:
    md = make_report(run_dir)
    assert md == run_dir / "report" / "report.md"
    text = md.read_text()
    for name in FIGURES:
        png = md.parent / name
        assert png.exists() and png.stat().st_size > 5_000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    assert "round 60: jam" in text and "round 120: loss p=0.2" in text


def test_epoch_curves_and_time_axis_come_from_the_run(run_dir: Path) -> None:
    _, summary, rounds, _ = read_run(run_dir)
    curves = epoch_curves(summary, rounds)
    assert sorted(curves["train_accuracy"]) == [0, 1]
    assert sorted(curves["eval_accuracy"]) == [0, 1]
    assert curves["eval_accuracy"][1] == pytest.approx(summary["test_accuracy"])
    assert all(v > 0 for v in curves["train_loss"].values())
    starts = round_start_times(rounds)
    assert starts[0] == 0.0
    assert starts[len(rounds)] == pytest.approx(summary["virtual_time_s"])
    assert all(starts[r] < starts[r + 1] for r in range(len(rounds)))


def test_report_command_writes_elsewhere_and_refuses_a_non_run(run_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argparse.Namespace(run_dir=run_dir, out=tmp_path / "r")) == 0
    assert (tmp_path / "r" / "report.md").exists()
    assert main(argparse.Namespace(run_dir=tmp_path / "nothing", out=None)) == 2
    assert "not a finished run directory" in capsys.readouterr().err
