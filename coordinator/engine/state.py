"""The engine's vocabulary: phases, options, the run's state record, where records go."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from coordinator.engine.outcome import RoundOutcome
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


#: Once a TX has arrived, a device still missing is silent after this long without any
#: further TX (s) -- or twice the exchange's time so far, if that is longer (our choice: on
#: a 2-core host 20 processes answer one after another, spaced by one device's compute).
IDLE_GAP_S = 1.0
#: Seconds the FINALs of a stopped run are waited for (live nodes answer in milliseconds).
STOP_FINAL_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class EngineOptions:
    """How patient the engine is (seconds) and how it paces exchanges.

    ``deadline_s`` bounds an exchange while no device has answered yet; once one has, the
    others have :data:`IDLE_GAP_S` (or twice the time so far) after the latest TX.
    """

    deadline_s: float = 30.0
    register_timeout_s: float = 600.0
    final_timeout_s: float = 20.0
    down_after: int = 3
    lockstep: bool = False
    realtime: bool = False
    #: Resolve each exchange's radio while the devices compute (coordinator/engine/medium.py,
    #: ``Air.speculate``); False: only once their TXs are in. The same results either way.
    speculate: bool = True


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


@dataclass(frozen=True)
class ExchangeDone:
    """What an exchange changed, handed to the checkpoint before its RXs leave."""

    next_plan: int  # the plan a restart goes on with
    rxs: dict[int, Rx]  # by device: what a restart sends again
    resolved: list[RoundOutcome]  # the rounds this exchange resolved, in round order
    forget_before: int  # the air dropped its cached rounds below this one


#: Called after an exchange's air is resolved and before its RXs leave (the checkpoint).
ExchangeHook = Callable[[ExchangeDone], None]
