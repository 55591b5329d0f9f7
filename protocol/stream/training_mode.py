"""The training modes (docs/modes.md), in a module of their own so that the schedule, the
configuration and the devices can all import them without an import cycle (re-exported by
:mod:`protocol.stream.modes`)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MODES", "TrainingMode"]


class TrainingMode(StrEnum):
    """A run's training mode. A ``StrEnum``: a member equals its string, so configurations
    and frames keep carrying plain strings (``RunConfig.mode == "rocknet"`` still holds)."""

    ROCKNET = "rocknet"
    PRIVATE_LABELS = "private-labels"
    DATA_PARALLEL = "data-parallel"


#: The training modes, as strings (for messages and command-line choices).
MODES: tuple[str, ...] = tuple(m.value for m in TrainingMode)
