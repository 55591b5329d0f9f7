"""SIGINT / SIGTERM for a local run: the first asks the run to stop, the second ends it.

Before the run exists (building the setup, starting the nodes) a signal interrupts at once.
Once it runs, the first signal asks it to stop after the current exchange (the nodes are
stopped, their FINALs collected for a moment, the summary written); a second one interrupts
whatever is still going on (the summary is still written). Handlers can only be installed
from the main thread; elsewhere (tests running a testbed in a thread) this does nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


class RunInterrupted(Exception):
    """A signal ended the run (or its setup) before it could stop by itself."""


class StopSignals:
    """Context manager: route SIGINT and SIGTERM to ``request_stop`` once it is set."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.request_stop: Callable[[str], None] | None = None
        self.received: list[str] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if self.request_stop is None or len(self.received) > 1:
            raise RunInterrupted(f"interrupted by {name}")
        self.request_stop(f"signal {name}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
