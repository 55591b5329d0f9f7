"""Scenario files: timed fault-injection commands applied exactly per round.

A scenario file is TOML with a list of timed events, each any inject command::

    [[event]]
    at_round = 100          # or: at_time_s = 12.5 (virtual seconds)
    command = "jam"
    nodes = [0, 1, 2]
    prr = 0.0
    rounds = 50
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Commands that change the air (allowed in scenario files).
INJECT_COMMANDS = (
    "link-down", "link-up", "loss", "burst", "jam", "node-down", "node-up", "clear",
)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the event and the fix."""


@dataclass(order=True)
class ScenarioEvent:
    """One timed command: at a round, or at a virtual time (seconds)."""

    at_round: int | None
    at_time_s: float | None
    command: str = field(compare=False)
    args: dict[str, Any] = field(compare=False, default_factory=dict)

    def due(self, next_round: int, virtual_time_s: float) -> bool:
        if self.at_round is not None:
            return next_round >= self.at_round
        return self.at_time_s is not None and virtual_time_s >= self.at_time_s


def load_scenario(path: Path) -> list[ScenarioEvent]:
    """Read a scenario TOML file; raises :class:`ScenarioError` naming the bad event."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from exc
    raw = data.get("event", [])
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"scenario {path} has no [[event]] entries")
    events = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ScenarioError(f"scenario {path}: event {i} is not a table")
        entry = dict(entry)
        command = entry.pop("command", None)
        if command not in INJECT_COMMANDS:
            raise ScenarioError(
                f"scenario {path}: event {i} has command {command!r}; use one of {INJECT_COMMANDS}"
            )
        at_round = entry.pop("at_round", None)
        at_time = entry.pop("at_time_s", None)
        if (at_round is None) == (at_time is None):
            raise ScenarioError(f"scenario {path}: event {i} needs exactly one of at_round / at_time_s")
        events.append(ScenarioEvent(
            at_round=None if at_round is None else int(at_round),
            at_time_s=None if at_time is None else float(at_time),
            command=command,
            args=entry,
        ))
    return events
