"""Experiment files: ``rocknet run|coordinator|sweep|compare --config exp.toml``.

Every flag of the subcommand can be a key of the TOML file (``nodes = 5``,
``dataset = "GunPoint"``, ``split = "label-sorted"``; a flag's dashes may be written as
underscores: ``num_features`` or ``num-features``). The file's values become the parser's
defaults, so flags given on the command line override the file. The keys are taken from the
argparse parser itself, so flags added later are covered without touching this module.
An unknown key or a value of the wrong type is an error that names the key and what it
accepts (an argparse type may say it in words with an ``expects`` attribute and restrict the
TOML types it takes with ``toml_types``, as ``seeds`` and ``datasets`` do). ``seeds = K``
(run, compare, sweep: repetitions with seeds SEED..SEED+K-1) and ``datasets = ["A", "B"]``
or ``datasets = "all"`` (sweep) are keys like any other.

Paths in the file (``topology``, ``scenario``, ``out``, ...) are relative to the file's
folder. A scenario's events may be given inline as ``[[event]]`` tables, in the scenario
file format (docs: coordinator/service/scenario.py); the file is then its own scenario.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

CONFIG_COMMANDS = ("run", "coordinator", "sweep", "compare")


class ExperimentFileError(ValueError):
    """A bad experiment file; the message names the key and the allowed values."""


def add_config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help="experiment file (TOML): every flag as a key; command-line flags win")


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    # argparse has no public accessor for a parser's subcommands; its actions are the way.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise ExperimentFileError(f"{command!r} has no subcommands")


def _flag_actions(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Key (the long flag without ``--``) -> its action; the dest is accepted as well."""
    out: dict[str, argparse.Action] = {}
    for action in p._actions:
        longs = [s[2:] for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest in ("help", "config"):
            continue
        for name in longs:
            out[name] = action
            out[name.replace("-", "_")] = action
        out[action.dest] = action
    return out


#: How an error names what a flag of this argparse type takes.
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", Path: "a path"}


def _expects(converter: Any) -> str:
    """What a flag of type ``converter`` takes, in words (a type may set ``expects``)."""
    words = getattr(converter, "expects", None) or _TYPE_WORDS.get(converter)
    return str(words or f"a {getattr(converter, '__name__', 'value')}")


def _convert(key: str, value: Any, action: argparse.Action) -> Any:
    """The file's ``value`` as the flag would have parsed it; a clear error if it cannot."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ExperimentFileError(f"{key} = {value!r}: must be true or false")
        return value
    converter = action.type if callable(action.type) else str
    expects = _expects(converter)
    if isinstance(value, (dict,)):
        raise ExperimentFileError(f"{key}: a table is not a value for --{key.replace('_', '-')}; "
                                  f"it takes {expects}")
    toml_types = getattr(converter, "toml_types", None)
    if toml_types is not None and not isinstance(value, toml_types):
        raise ExperimentFileError(f"{key} = {value!r}: must be {expects}")
    if isinstance(value, list):
        bad = [v for v in value if isinstance(v, (list, dict, bool))]
        if bad:
            raise ExperimentFileError(f"{key} = {value!r}: must be {expects} (got {bad[0]!r} in the list)")
        if action.nargs in (None, "?"):
            value = ",".join(str(v) for v in value)  # a list for a comma-list flag
        else:
            return [_convert(key, v, action) for v in value]
    if isinstance(value, bool) and action.type in (int, float):
        raise ExperimentFileError(f"{key} = {value!r}: must be a number")
    text = value if isinstance(value, str) else str(value)
    try:
        out = converter(text)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        raise ExperimentFileError(f"{key} = {value!r}: must be {expects} ({exc})") from None
    if action.choices is not None and out not in action.choices:
        raise ExperimentFileError(
            f"{key} = {value!r}: must be one of {', '.join(map(str, action.choices))}")
    return out


def load_defaults(path: Path, p: argparse.ArgumentParser) -> dict[str, Any]:
    """The ``dest -> value`` defaults the TOML file at ``path`` sets on subparser ``p``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentFileError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentFileError(f"--config {path}: not valid TOML ({exc})") from None
    actions = _flag_actions(p)
    allowed = sorted({k for k in actions if "-" not in k})
    out: dict[str, Any] = {}
    if "event" in data:  # inline scenario events: the file is a scenario file as well
        if "scenario" not in actions:
            raise ExperimentFileError(f"{path}: [[event]] entries: this command takes no scenario")
        if "scenario" in data:
            raise ExperimentFileError(f"{path}: give the scenario inline ([[event]]) or by "
                                      "path (scenario = ...), not both")
        data = {k: v for k, v in data.items() if k != "event"}
        out[actions["scenario"].dest] = Path(path)
    for key, value in data.items():
        action = actions.get(key)
        if action is None:
            raise ExperimentFileError(
                f"{path}: unknown key {key!r}; allowed keys: {', '.join(allowed)}")
        converted = _convert(key, value, action)
        if isinstance(converted, Path) and not converted.is_absolute():
            converted = Path(path).parent / converted  # relative to the file, not the shell
        out[action.dest] = converted
    return out


def parse_with_config(build_parser: Any, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; with ``--config``, re-parse with the file's values as defaults."""
    parser = build_parser()
    first = parser.parse_args(argv)
    path = getattr(first, "config", None)
    if path is None or first.command not in CONFIG_COMMANDS:
        return first
    parser = build_parser()
    sub = _subparser(parser, first.command)
    try:
        defaults = load_defaults(path, sub)
    except ExperimentFileError as exc:
        parser.error(str(exc))
    sub.set_defaults(**defaults)
    return parser.parse_args(argv)
