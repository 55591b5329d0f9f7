"""Attaching to a coordinator and staying in step with it (:class:`Follower`).

Subscribe to the feed first, then ask the control socket for a full snapshot (``status``),
then apply feed messages on top of it (:meth:`~.state.MonitorState.apply`). PUB/SUB delivers
in order and without loss once a subscription is live, but a new subscription takes effect at
the publisher a little later than ``connect()`` returns, so the first message received decides
whether the snapshot and the feed meet; a gap (missed rounds, a subscriber buffer overflow, a
new run on the same ports) is healed by a fresh snapshot (a *resync*). The monitor only
reads: ``status`` requests and a subscription; it never changes the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from coordinator.ui.control_client import ControlClient, ControlTimeout
from coordinator.ui.feed_client import (
    CurveSetup,
    Endpoints,
    FeedClient,
    FeedMessage,
    feed_port_of,
)
from coordinator.ui.monitor.output import Output
from coordinator.ui.monitor.state import (
    PROBE_AFTER_S,
    Applied,
    EventEntry,
    MonitorState,
)
from protocol.wire.frames import FeedRound

#: Seconds the first snapshot is held back waiting for the feed to prove it is in sync.
SYNC_HOLD_S = 1.0
#: Seconds to wait for one ``status`` answer.
SNAPSHOT_TIMEOUT_S = 2.0


class CoordinatorGone(RuntimeError):
    """No coordinator answered within the time allowed."""


class SnapshotRefused(RuntimeError):
    """The coordinator answered ``status`` with an error (its message says why)."""




def take_snapshot(endpoint: str, timeout_s: float = SNAPSHOT_TIMEOUT_S,
                  curve: CurveSetup | None = None) -> dict[str, Any]:
    """One ``status`` answer from the coordinator: :class:`ControlTimeout` if none came,
    :class:`SnapshotRefused` if it was an error."""
    with ControlClient(endpoint, timeout_s=timeout_s, curve=curve) as client:
        reply = client.request("status")
    if not reply.ok or not isinstance(reply.data, dict) or "next_round" not in reply.data:
        raise SnapshotRefused(f"the coordinator at {endpoint} answered status without a "
                              f"snapshot: {reply.message}")
    return dict(reply.data)


class Follower:
    """Keeps a :class:`MonitorState` in step with a coordinator (see the module docstring)."""

    def __init__(self, endpoints: Endpoints, state: MonitorState | None = None,
                 snapshot_timeout_s: float = SNAPSHOT_TIMEOUT_S, clock: Callable[[], float] = time.monotonic,
                 curve: CurveSetup | None = None, feed_curve: CurveSetup | None = None) -> None:
        self.endpoints = endpoints
        self.state = state or MonitorState()
        self.snapshot_timeout_s = snapshot_timeout_s
        self.clock = clock
        self.curve = curve  # control socket (None: ControlClient's $ROCKNET_CURVE_DIR default)
        self.feed_curve = feed_curve  # feed socket (None: plain, as the coordinator's PUB is)
        self.feed = FeedClient(endpoints.feed, curve=feed_curve)
        self._last_probe_s = 0.0

    def _snapshot(self, timeout_s: float) -> dict[str, Any]:
        return take_snapshot(self.endpoints.control, timeout_s, self.curve)

    def close(self) -> None:
        self.feed.close()

    # ------------------------------------------------------------------ snapshot
    def wait_for_snapshot(self, wait_s: float, log: TextIO | None = None) -> dict[str, Any]:
        """Retry ``status`` until a coordinator answers (``wait_s`` 0: forever)."""
        deadline = None if wait_s <= 0 else self.clock() + wait_s
        told = False
        while True:
            # A coordinator that is up answers in milliseconds: say soon that there is none.
            timeout = self.snapshot_timeout_s if told else min(self.snapshot_timeout_s, 0.5)
            if deadline is not None:
                timeout = min(timeout, max(deadline - self.clock(), 0.05))
            try:
                return self._snapshot(timeout)
            except ControlTimeout:
                if not told and log is not None:
                    print(f"waiting for coordinator at {self.endpoints.control} "
                          f"(feed {self.endpoints.feed}) ...", file=log, flush=True)
                told = True
                if deadline is not None and self.clock() >= deadline:
                    raise CoordinatorGone(
                        f"no coordinator answered at {self.endpoints.control} within "
                        f"{wait_s:g} s (start the run, or check --connect/--control-port)") from None

    def _follow_feed_port(self, snapshot: dict[str, Any]) -> bool:
        """Reconnect the SUB if the snapshot names another feed port; True if it did."""
        port = feed_port_of(str((snapshot.get("endpoints") or {}).get("feed", "")))
        if port is None or port == feed_port_of(self.endpoints.feed):
            return False
        host = self.endpoints.feed.rpartition(":")[0]
        self.endpoints = Endpoints(self.endpoints.control, f"{host}:{port}")
        self.feed.close()
        self.feed = FeedClient(self.endpoints.feed, curve=self.feed_curve)
        return True

    def attach(self, wait_s: float, log: TextIO | None = None) -> list[Output]:
        """Snapshot + the feed messages that follow it, once the feed is shown to be in step
        (or after :data:`SYNC_HOLD_S` without any feed message)."""
        first = self.wait_for_snapshot(wait_s, log)
        if self._follow_feed_port(first) and log is not None:
            print(f"feed is on {self.endpoints.feed} (from the coordinator's status)", file=log)
        # The coordinator is up, so the SUB connects within its reconnect interval; the
        # snapshot that counts is taken after that.
        self.feed.wait_connected(2.0)
        snapshot = self._snapshot(self.snapshot_timeout_s) \
            if self.feed.connected else first
        self.state.load_snapshot(snapshot)
        outputs = [Output("snapshot", snapshot)]
        deadline = self.clock() + SYNC_HOLD_S
        while not self.state.confirmed and not self.state.finished:
            left = deadline - self.clock()
            if left <= 0:
                break
            for msg in self.feed.receive(left):
                outputs = self._apply(msg, outputs)
        self.state.dropped_frames = self.feed.dropped
        return outputs

    def _resync(self, resync: bool = True) -> Output:
        snapshot = self._snapshot(self.snapshot_timeout_s)
        self.state.load_snapshot(snapshot)
        self.state.resyncs += 1
        self.state.log(EventEntry(self.state.round, "monitor", {
            "message": f"monitor resynced at round {self.state.round} (feed had a gap)"}))
        return Output("snapshot", snapshot, resync=resync)

    def _apply(self, msg: FeedMessage, outputs: list[Output]) -> list[Output]:
        result = self.state.apply(msg, self.clock())
        if result is Applied.GAP:
            try:
                if outputs and outputs[0].kind == "snapshot" and not self.state.confirmed:
                    # Nothing since that snapshot was applied, and it is not printed yet.
                    outputs = [self._resync(resync=outputs[0].resync)]
                else:
                    outputs.append(self._resync())
            except (ControlTimeout, SnapshotRefused):  # the next round will ask again
                self.state.lost_since_s = self.state.lost_since_s or self.clock()
                return outputs
            result = self.state.apply(msg, self.clock())
            if result is Applied.GAP:  # still ahead: the next snapshot will tell
                return outputs
        if result is Applied.APPLIED:
            outputs.append(Output("round" if isinstance(msg, FeedRound) else "event", message=msg))
        return outputs

    # ------------------------------------------------------------------ following
    def poll(self, timeout_s: float) -> list[Output]:
        """Feed messages of up to ``timeout_s`` (and a resync snapshot when needed)."""
        outputs: list[Output] = []
        for msg in self.feed.receive(timeout_s):
            outputs = self._apply(msg, outputs)
        self.state.dropped_frames = self.feed.dropped
        now = self.clock()
        quiet_since = self.state.last_message_s or 0.0
        # A finished run's coordinator goes away: nothing to ask (a new run on the same ports
        # shows up on the feed as rounds starting again, which resyncs).
        if not self.state.finished and now - quiet_since >= PROBE_AFTER_S \
                and now - self._last_probe_s >= PROBE_AFTER_S:
            self._last_probe_s = now
            outputs.extend(self.probe())
        return outputs

    def probe(self) -> list[Output]:
        """Ask ``status`` while the feed is quiet: refresh the header, detect missed rounds."""
        try:
            snapshot = self._snapshot(min(self.snapshot_timeout_s, 1.0))
        except (ControlTimeout, SnapshotRefused):
            if self.state.lost_since_s is None:
                self.state.lost_since_s = self.clock()
            return []
        # Rounds going backwards mean a new run on the same ports. (Rounds ahead of ours
        # may still be on their way through the feed; a real gap shows when they arrive.)
        if int(snapshot.get("next_round", 0)) < self.state.next_round:
            self.state.load_snapshot(snapshot)
            self.state.resyncs += 1
            return [Output("snapshot", snapshot, resync=True)]
        self.state.refresh(snapshot)
        return []
