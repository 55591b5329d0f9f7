"""The engine's sense of time: deadlines and wall-time stamps read a :class:`Clock`.

Production uses :class:`SystemClock` (``time.monotonic``). :class:`ManualClock` is a clock
that only moves when it is told to, or when someone sleeps on it: with it, a deadline of
30 s passes in no wall time at all (registration timeouts, a silent device, a pause), so the
engine's timing rules can be exercised, and a run driven in-process never waits for the
real clock.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a way to let them pass."""

    def monotonic(self) -> float:
        """Seconds since an arbitrary origin; never decreases."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class SystemClock:
    """The host's monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that advances only through :meth:`advance` or :meth:`sleep` (seconds)."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = float(start_s)

    def monotonic(self) -> float:
        return self._now_s

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._now_s += seconds
