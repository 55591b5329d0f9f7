"""Reading what a finished run leaves in its directory (see :mod:`coordinator.service.results`).

``config.json`` (the run's arguments and setup), ``summary.json`` (its results) and
``metrics.jsonl`` (one JSON object a line: ``type`` ``round`` or ``event``). The tools
(sweep, baseline, report) read runs only through :func:`read_run`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple


class RunRecords(NamedTuple):
    """A run directory's contents, as the JSON it holds (unpacks as a 4-tuple)."""

    config: dict[str, Any]
    summary: dict[str, Any]
    rounds: list[dict[str, Any]]  # round records, sorted by round
    events: list[dict[str, Any]]  # event records, in the order they were written


def read_run(run_dir: Path) -> RunRecords:
    """``(config, summary, round records sorted by round, event records)`` of a run directory.

    :class:`ValueError` if ``config.json`` or ``summary.json`` is missing (not a finished run);
    a line of ``metrics.jsonl`` cut by a crash is skipped.
    """
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{run_dir} is not a finished run directory (missing {Path(exc.filename).name})") from exc
    rounds: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        with metrics.open() as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                if rec.get("type") == "round":
                    rounds.append(rec)
                elif rec.get("type") == "event":
                    events.append(rec)
    rounds.sort(key=lambda r: r["round"])
    return RunRecords(config, summary, rounds, events)
