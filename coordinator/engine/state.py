"""The engine's vocabulary: phases, options, the run's state record, where records go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from coordinator.engine.records import EventRecord, RoundRecord, RunningAccuracy
from protocol.wire.frames import Rx

#: Phases reported by ``rocknet status``.
WAITING, RUNNING, PAUSED, FINISHED, FAILED = "waiting", "running", "paused", "finished", "failed"
#: Longest single wait on the link (s): control stays responsive, stop requests are seen.
POLL_SLICE_S = 0.2
#: Seconds between keepalives to idle nodes (registration, pause).
KEEPALIVE_S = 1.0


class RunAborted(RuntimeError):
    """The run cannot go on (a node refused its configuration, registration timed out...)."""


@dataclass(frozen=True)
class EngineOptions:
    """How patient the engine is (seconds) and how it paces exchanges."""

    deadline_s: float = 30.0
    register_timeout_s: float = 600.0
    final_timeout_s: float = 20.0
    down_after: int = 3
    lockstep: bool = False
    realtime: bool = False


@dataclass
class RunState:
    """What the engine knows about the run while it goes (counters are frames)."""

    phase: str = WAITING
    exchange: int = -1
    round: int = 0
    started_wall: float = 0.0
    bad_frames: int = 0
    stale_frames: int = 0
    dropped_sends: int = 0  # frames to peers whose queue was full (never-reading clients)
    paused: bool = False
    stop_reason: str | None = None
    error: str | None = None
    accuracy: RunningAccuracy = field(default_factory=RunningAccuracy)


class RunSink(Protocol):
    """Where the engine's records go (the service: feed, metrics file, callbacks)."""

    def record_event(self, record: EventRecord) -> None: ...

    def record_round(self, record: RoundRecord) -> None: ...


#: Called after an exchange's air is resolved and before its RXs leave (the checkpoint):
#: ``(next_plan, rx by device)``.
ExchangeHook = Callable[[int, dict[int, Rx]], None]
