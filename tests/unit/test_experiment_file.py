"""Experiment files (``--config exp.toml``): file values as defaults, flags override, and
clear errors for unknown keys and wrong types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.ui.cli import build_parser, main
from coordinator.ui.experiment_file import parse_with_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.usefixtures("warm_numba")
def test_file_values_run_and_a_command_line_flag_overrides_the_file(tmp_path: Path) -> None:
    exp = write(tmp_path, 'nodes = 5\ndataset = "GunPoint"\nepochs = 2\nsplit = "label-sorted"\n'
                          'num_features = 1000\nbackend = "inprocess"\nno-reference = true\n'
                          'quiet = true\n')
    out = tmp_path / "run"
    assert main(["run", "--config", str(exp), "--epochs", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nodes"] == 5 and len(summary["per_node"]) == 5
    assert summary["epochs"] == 3
    assert summary["split"] == "label-sorted"
    # label-sorted on GunPoint: at most one device (the class boundary) holds both classes.
    assert sum(min(n["train_label_histogram"]) > 0 for n in summary["per_node"]) <= 1
    config = json.loads((out / "config.json").read_text())
    assert "label-sorted" in json.dumps(config)


def test_values_become_the_flags_types(tmp_path: Path) -> None:
    exp = write(tmp_path, 'nodes = 7\nloss = 0.25\nlockstep = true\nmissing_policy = "skip"\n')
    a = parse_with_config(build_parser, ["run", "--config", str(exp)])
    assert (a.nodes, a.loss, a.lockstep, a.missing_policy) == (7, 0.25, True, "skip")
    b = parse_with_config(build_parser, ["run", "--config", str(exp), "--nodes", "3"])
    assert b.nodes == 3


@pytest.mark.parametrize("text, says", [
    ("nodez = 5\n", "unknown key 'nodez'; allowed keys:"),
    ('nodes = "five"\n', "nodes = 'five': must be an integer"),
    ("seeds = 0\n", "seeds = 0: must be an integer >= 1"),
    ("seeds = 2.5\n", "seeds = 2.5: must be an integer >= 1"),
    ('seeds = "many"\n', "seeds = 'many': must be an integer >= 1"),
    ("jobs = [2]\n", "jobs = [2]: must be an integer >= 1"),
    ('protocol = "wifi"\n', "must be one of mixer, mixer-coordinated, glossy"),
    ("lockstep = 1\n", "lockstep = 1: must be true or false"),
    ("epochs = true\n", "must be a number"),
    ("nodes = [\n", "not valid TOML"),
])
def test_bad_files_are_clear_errors(tmp_path: Path, text: str, says: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    exp = write(tmp_path, text)
    with pytest.raises(SystemExit):
        parse_with_config(build_parser, ["run", "--config", str(exp)])
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("text, says", [
    ("datasets = 3\n", 'datasets = 3: must be a list of dataset names, or "all"'),
    ("datasets = true\n", 'datasets = True: must be a list of dataset names, or "all"'),
    ('datasets = ["A", ["B"]]\n', "got ['B'] in the list"),
    ("seeds = -1\n", "seeds = -1: must be an integer >= 1"),
])
def test_bad_sweep_files_are_clear_errors(tmp_path: Path, text: str, says: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    exp = write(tmp_path, text)
    with pytest.raises(SystemExit):
        parse_with_config(build_parser, ["sweep", "--config", str(exp)])
    assert says in capsys.readouterr().err


def test_seeds_and_datasets_keys(tmp_path: Path) -> None:
    exp = write(tmp_path, 'seeds = 3\njobs = 2\ndatasets = ["UnitTest", "ItalyPowerDemand"]\n')
    a = parse_with_config(build_parser, ["sweep", "--config", str(exp)])
    assert (a.seeds, a.jobs, a.datasets) == (3, 2, ("UnitTest", "ItalyPowerDemand"))
    assert parse_with_config(build_parser, ["sweep", "--config", str(exp), "--seeds", "5"]).seeds == 5
    assert parse_with_config(build_parser, ["sweep", "--config",
                                            str(write(tmp_path, 'datasets = "all"\n'))]).datasets == ("all",)
    for command in ("run", "compare"):
        assert parse_with_config(build_parser, [command, "--config",
                                                str(write(tmp_path, "seeds = 4\n"))]).seeds == 4


def test_sweep_and_compare_take_a_file_too(tmp_path: Path) -> None:
    for command in ("sweep", "compare"):
        exp = write(tmp_path, "seed = 4\n")
        assert parse_with_config(build_parser, [command, "--config", str(exp)]).seed == 4


def test_paths_are_relative_to_the_file_and_events_may_be_inline(tmp_path: Path) -> None:
    exp = write(tmp_path, 'topology = "net.toml"\n')
    assert parse_with_config(build_parser, ["run", "--config", str(exp)]).topology == tmp_path / "net.toml"
    inline = write(tmp_path, 'nodes = 3\n[[event]]\nat_round = 5\ncommand = "jam"\nnodes = [0]\n')
    # "nodes" inside [[event]] is the event's, not the run's: the run keeps nodes = 3.
    a = parse_with_config(build_parser, ["run", "--config", str(inline)])
    assert a.scenario == inline and a.nodes == 3
    from coordinator.service.scenario import load_scenario
    events = load_scenario(a.scenario)
    assert [(e.at_round, e.command, e.args) for e in events] == [(5, "jam", {"nodes": [0]})]


@pytest.mark.parametrize("name, command", [("run", "run"), ("jamming", "run"), ("seeds", "run"),
                                            ("sweep", "sweep"), ("compare", "compare")])
def test_the_examples_parse(name: str, command: str) -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.toml"
    a = parse_with_config(build_parser, [command, "--config", str(path)])
    assert a.dataset == "GunPoint"
    if name == "seeds":
        assert (a.seeds, a.backend) == (5, "inprocess")
    if name == "jamming":
        from coordinator.service.scenario import load_scenario
        assert [e.command for e in load_scenario(a.scenario)] == ["jam"]


def test_the_validation_rule_and_quantization_reach_the_run(tmp_path: Path) -> None:
    from coordinator.service.run_setup import build_setup
    from coordinator.ui.cli import _run_args

    exp = write(tmp_path, 'nodes = 3\nepochs = 1\nselect = "decay"\nquantization = "mulaw"\n')
    args = _run_args(parse_with_config(build_parser, ["run", "--config", str(exp)]))
    assert args.quantization == "mulaw" and args.model_overrides == {"selection": "decay"}
    assert build_setup(args).config.model.selection == "decay"
    # Not given: the recipe decides (the paper's recipe selects by epoch).
    plain = _run_args(parse_with_config(build_parser, ["run", "--recipe", "paper"]))
    assert plain.model_overrides == {} and build_setup(plain).config.model.selection == "epoch"
    with pytest.raises(SystemExit):
        parse_with_config(build_parser, ["run", "--quantization", "log"])
