"""Experiment files: ``rocknet run|coordinator|sweep|compare --config exp.toml``.

A TOML file whose top-level keys are the command's flags, spelled as the flag
(``batch-size``) or as its Python name (``batch_size``)::

    nodes = 5
    dataset = "GunPoint"
    epochs = 2
    protocol = "mixer"
    lockstep = false
    scenario = "jam.toml"       # a scenario file, relative to this file ...

    [[event]]                   # ... or the scenario's events inline
    at_round = 100
    command = "jam"
    nodes = [0, 1, 2]
    prr = 0.0
    rounds = 50

The file is turned into flags placed before the command line's own, so a flag given on the
command line wins. Keys and types are checked against the command's own parser (so a flag
added to a command is a key at once): an unknown key, a value of the wrong type or one
outside the flag's choices is an :class:`ExperimentFileError` naming the key and what is
allowed. Relative paths are relative to the file's folder. What the run resolved is saved in
its run directory (``config.json``) as for any run.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Commands that take ``--config``.
CONFIG_COMMANDS = ("run", "coordinator", "sweep", "compare")


class ExperimentFileError(ValueError):
    """A bad experiment file; the message names the key and the fix."""


@dataclass(frozen=True)
class _Flag:
    option: str  # "--batch-size"
    action: argparse.Action

    @property
    def is_switch(self) -> bool:
        return self.action.nargs == 0  # store_true / store_false

    def describe(self) -> str:
        if self.is_switch:
            return "true or false"
        if self.action.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.action.choices)
        kind = self.action.type
        if kind is int:
            return "an integer"
        if kind is float:
            return "a number"
        return "a string" if kind is not Path else "a path (string)"


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse keeps its subcommands there; no public accessor
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            sub: argparse.ArgumentParser = action.choices[command]
            return sub
    raise ExperimentFileError(f"{command!r} takes no --config")


def _flags(sub: argparse.ArgumentParser) -> dict[str, _Flag]:
    """Key -> flag, by the flag's spelling without dashes and by its Python name."""
    out: dict[str, _Flag] = {}
    for action in sub._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or action.dest in ("help", "config"):
            continue
        flag = _Flag(longs[0], action)
        out[longs[0][2:]] = flag
        out.setdefault(action.dest, flag)
    return out


def _tokens(key: str, value: Any, flag: _Flag, base: Path) -> list[str]:
    """The command-line tokens of ``key = value`` (ExperimentFileError if it does not fit)."""
    action = flag.action
    wrong = ExperimentFileError(f"{key} = {value!r}: expected {flag.describe()}")
    if flag.is_switch:
        if not isinstance(value, bool):
            raise wrong
        return [flag.option] if value == bool(action.const) else []
    if isinstance(value, bool):
        raise wrong
    if isinstance(value, list):  # a list flag given as a TOML array: "2,5" on the command line
        if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
            raise wrong
        text = ",".join(str(v) for v in value)
    elif action.type is int:
        if not isinstance(value, int):
            raise wrong
        text = str(value)
    elif action.type is float:
        if not isinstance(value, (int, float)):
            raise wrong
        text = repr(float(value))
    elif isinstance(value, (int, float)) and action.type is not Path and action.choices is None:
        text = str(value)  # a str flag, or a flag with its own parser (e.g. sweep's --nodes)
    elif isinstance(value, str):
        text = str(base / value) if action.type is Path and not Path(value).is_absolute() else value
    else:
        raise wrong
    if action.choices is not None and text not in [str(c) for c in action.choices]:
        raise wrong
    return [flag.option, text]


def expand(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with ``--config FILE`` replaced by the file's flags (placed first, so the
    command line's own flags override them); ``argv`` itself when there is no ``--config``."""
    if not argv or argv[0] not in CONFIG_COMMANDS:
        return argv
    rest, path = list(argv[1:]), None
    for i, token in enumerate(rest):
        if token == "--config" and i + 1 < len(rest):
            path = Path(rest[i + 1])
            del rest[i:i + 2]
            break
        if token.startswith("--config="):
            path = Path(token.split("=", 1)[1])
            del rest[i]
            break
    if path is None:
        return argv
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ExperimentFileError(f"cannot read experiment file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentFileError(f"experiment file {path} is not valid TOML: {exc}") from exc
    flags = _flags(_subparser(parser, argv[0]))
    tokens: list[str] = []
    if "event" in data:  # inline scenario: the file itself is a scenario file
        if "scenario" in data:
            raise ExperimentFileError(f"{path}: give the scenario inline ([[event]]) or as "
                                      "scenario = \"file\", not both")
        if "scenario" not in flags:
            raise ExperimentFileError(f"{path}: rocknet {argv[0]} takes no scenario ([[event]])")
        tokens += [flags["scenario"].option, str(path)]
    for key, value in data.items():
        if key == "event":
            continue
        flag = flags.get(key)
        if flag is None:
            allowed = sorted({f.option[2:] for f in flags.values()})
            raise ExperimentFileError(f"{path}: unknown key {key!r} for rocknet {argv[0]}; "
                                      f"allowed: {', '.join(allowed)}")
        tokens += _tokens(key, value, flag, path.parent)
    return [argv[0], *tokens, *rest]


def add_config_flag(sub: argparse.ArgumentParser) -> None:
    """Document ``--config`` in a command's help (:func:`expand` consumes it first)."""
    sub.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                     help="take flags from an experiment file (TOML; flags given here override it)")
