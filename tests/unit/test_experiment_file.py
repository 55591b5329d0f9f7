"""Experiment files: keys are flags, the command line wins, bad files say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.ui.cli import build_parser
from coordinator.ui.experiment_file import ExperimentFileError, expand


def parsed(tmp_path: Path, text: str, *argv: str, command: str = "run") -> object:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    parser = build_parser()
    return parser.parse_args(expand(parser, [command, "--config", str(path), *argv]))


def test_keys_become_flags_and_the_command_line_overrides_them(tmp_path: Path) -> None:
    a = parsed(tmp_path, 'nodes = 5\ndataset = "GunPoint"\nepochs = 2\nbatch-size = 8\n'
                         'missing_policy = "reuse"\nlockstep = true\nloss = 0.25\n', "--epochs", "3")
    assert (a.nodes, a.dataset, a.epochs, a.batch_size) == (5, "GunPoint", 3, 8)  # type: ignore[attr-defined]
    assert a.missing_policy == "reuse" and a.lockstep is True and a.loss == 0.25  # type: ignore[attr-defined]


def test_paths_are_relative_to_the_file_and_inline_events_are_its_scenario(tmp_path: Path) -> None:
    a = parsed(tmp_path, 'topology = "layouts/office.toml"\n'
                         '[[event]]\nat_round = 3\ncommand = "jam"\nnodes = [0]\nprr = 0.0\nrounds = 2\n')
    assert a.topology == tmp_path / "layouts" / "office.toml"  # type: ignore[attr-defined]
    assert a.scenario == tmp_path / "exp.toml"  # type: ignore[attr-defined]


def test_sweep_takes_a_list_of_nodes(tmp_path: Path) -> None:
    a = parsed(tmp_path, 'nodes = [2, 5]\nepochs = 1\n', command="sweep")
    assert list(a.nodes) == [2, 5] and a.epochs == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "message"), [
    ("nodez = 5\n", "unknown key 'nodez' for rocknet run; allowed: .*nodes"),
    ('nodes = "five"\n', "nodes = 'five': expected an integer"),
    ("lockstep = 1\n", "lockstep = 1: expected true or false"),
    ('protocol = "wifi"\n', "protocol = 'wifi': expected one of 'mixer'"),
    ("loss = true\n", "loss = True: expected a number"),
    ("nodes = \n", "not valid TOML"),
])
def test_a_bad_file_names_the_key_and_what_is_allowed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ExperimentFileError, match=message):
        parsed(tmp_path, text)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFileError, match="cannot read experiment file .*nope.toml"):
        expand(build_parser(), ["run", "--config", str(tmp_path / "nope.toml")])

