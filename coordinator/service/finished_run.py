"""A finished run directory is never overwritten: the check that runs before anything starts.

Kept apart from ``coordinator.service.launch`` (and its imports: numba, the engine...) so that
``rocknet run`` can look first thing, before it starts the run's zygote; ``launch`` turns a
refusal into :class:`~coordinator.service.launch.FinishedRunDirectory`.
"""

from __future__ import annotations

import json
from pathlib import Path

#: ``summary.json``'s ``phase`` of a run that ended (``coordinator/engine/state.py`` FINISHED).
FINISHED_PHASE = "finished"


def finished_run_message(out: Path) -> str | None:
    """Why ``out`` must not be used (it holds a run that finished: its ``summary.json`` says
    so), or None; a run that was stopped or killed may be resumed there."""
    try:
        summary = json.loads((Path(out) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(summary, dict) and summary.get("phase") == FINISHED_PHASE and summary.get("stop_reason") is None:
        return (f"{out} holds a finished run (summary.json: {summary.get('rounds')} rounds, test accuracy "
                f"{summary.get('test_accuracy')}); nothing was changed: give a new --out to run again")
    return None
