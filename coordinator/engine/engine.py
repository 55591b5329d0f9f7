"""The run engine: the air and the clock of one run, over any :class:`NodeLink`.

One loop for every transport: registration (HELLO -> WELCOME), then per exchange plan:
ROUND to the reachable devices -> collect their TXs until a deadline -> resolve the air once
per round -> deliver RXs -> accounting -> round records and events -> checkpoint hook ->
RXs out; then STOP and the FINALs. The engine has no sockets and reads time only through
its :class:`Clock`; the coordinator service (ZeroMQ) and the in-process backend both run it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
import numpy as np

from coordinator.engine.accuracy import running_accuracy
from coordinator.engine.clock import Clock, SystemClock
from coordinator.engine.exchanges import ExchangePlan, deliver, plan_exchanges, silent_rx
from coordinator.engine.link import NodeLink, SendStatus
from coordinator.engine.medium import Air
from coordinator.engine.node_frames import NodeFrames
from coordinator.engine.outcome import RoundOutcome
from coordinator.engine.records import EventRecord, RoundRecord
from coordinator.engine.views import node_round_views
from coordinator.engine.registry import DOWN, Registry
from coordinator.engine.setup import RunSetup
from coordinator.engine.state import (
    FAILED,
    FINISHED,
    IDLE_GAP_S,
    KEEPALIVE_S,
    STOP_FINAL_TIMEOUT_S,
    PAUSED,
    POLL_SLICE_S,
    RUNNING,
    WAITING,
    EngineOptions,
    ExchangeDone,
    ExchangeHook,
    RunAborted,
    RunSink,
    RunState,
)
from coordinator.engine.values import plain_values
from protocol.wire.frames import (
    Bye,
    Error,
    Final,
    Heartbeat,
    Message,
    Rx,
    Stop,
    Tx,
)
from protocol.wire.stats import TxStats

log = logging.getLogger("rocknet.coordinator")

__all__ = ["RunEngine", "RunAborted", "EngineOptions", "RunState", "RunSink", "ExchangeDone", "ExchangeHook",
           "WAITING", "RUNNING", "PAUSED", "FINISHED", "FAILED"]

class RunEngine(NodeFrames):
    """Runs one training run with the devices that register over ``link``."""

    def __init__(self, setup: RunSetup, link: NodeLink, options: EngineOptions | None = None,
                 sink: RunSink | None = None, clock: Clock | None = None) -> None:
        self.setup = setup
        self.link = link
        self.options = options or EngineOptions()
        self.sink = sink
        self.clock = clock or SystemClock()
        self.config = setup.config
        self.stream = setup.stream
        self.registry = Registry(self.config.n_devices, down_after=self.options.down_after)
        self.air = Air(stream=self.stream, topology=setup.topology, loss=setup.loss,
                       protocol=setup.protocol, seed=self.config.model.seed,
                       series_length=self.config.series_length, n_classes=self.config.logit_width,
                       profile=self.config.profile)
        self.air.speculative = self.options.speculate
        self.plans = plan_exchanges(self.stream, lockstep=self.options.lockstep or self.options.realtime)
        self.state = RunState(started_wall=self.clock.monotonic())
        self.finals: dict[int, Final] = {}
        self.exchange_wall_s: list[float] = []  # host wall time of each exchange (s)
        self.on_exchange: ExchangeHook | None = None
        self.resumed_from: int | None = None
        #: How a missing device joins (added to the registration-timeout message).
        self.join_hint = "start the missing nodes"
        #: Names of nodes whose process ended since the last call (the backend knows first).
        self.exit_probe: Callable[[], list[str]] | None = None
        self._last_keepalive = float("-inf")

    # ------------------------------------------------------------------ records
    def event(self, event: str, **data: object) -> None:
        """Publish a change (node up/down, fault injected...) and log it."""
        log.info("event %s %s", event, data)
        if self.sink is not None:
            self.sink.record_event(EventRecord(self.air.next_round, event, plain_values(data)))

    def wall_s(self) -> float:
        """Seconds since the run started (by the engine's clock)."""
        return self.clock.monotonic() - self.state.started_wall

    # ------------------------------------------------------------------ sending
    def send(self, identity: bytes, msg: Message) -> bool:
        """Send to one node; False (and the node marked down if it is gone) otherwise."""
        status = self.link.send(identity, msg)
        if status is SendStatus.SENT:
            return True
        if status is SendStatus.QUEUE_FULL:  # a peer that does not read must not block the run
            self.state.dropped_sends += 1
            n = self.state.dropped_sends
            if n in (1, 10, 100) or n % 1000 == 0:
                log.warning("dropped a frame to %r: its queue is full (%d such drops so far)", identity, n)
            return False
        entry = self.registry.by_identity(identity)
        if entry is not None and self.registry.gone(entry):
            self.event("node_down", device=entry.device, name=entry.name, reason="disconnected")
        return False

    # ------------------------------------------------------------------ inbound
    def serve(self, seconds: float) -> None:
        """Let ``seconds`` pass while answering frames (pause, real-time pacing)."""
        end = self.clock.monotonic() + seconds
        while (left := end - self.clock.monotonic()) > 0 and self.state.stop_reason is None:
            for item in self.poll(min(left, POLL_SLICE_S)):
                self.late_frame(item)

    def keepalive(self) -> None:
        """While nothing else flows (registration, pause), tell every node we are alive, so
        that none gives up on an idle coordinator (nodes exit after --idle-timeout)."""
        now = self.clock.monotonic()
        if now - self._last_keepalive < KEEPALIVE_S:
            return
        self._last_keepalive = now
        for entry in self.registry.reachable():
            self.send(entry.identity, Heartbeat(device=entry.device, exchange=self.state.exchange))

    # ------------------------------------------------------------------ phases
    def wait_for_nodes(self) -> None:
        """Block until every device registered."""
        deadline = self.clock.monotonic() + self.options.register_timeout_s
        while not self.registry.complete:
            if self.state.stop_reason is not None:
                raise RunAborted(f"stopped before all nodes registered: {self.state.stop_reason}")
            if self.clock.monotonic() > deadline:
                raise RunAborted(
                    f"only {self.registry.registered} of {self.config.n_devices} nodes registered "
                    f"within {self.options.register_timeout_s:.0f} s: {self.join_hint}")
            self.keepalive()
            for item in self.poll(0.1):
                self._early_frame(item)

    def request_stop(self, reason: str) -> None:
        """End the run before its next exchange (an exchange under way is abandoned: its
        TXs are not waited for); STOP and the FINALs follow."""
        self.state.stop_reason = reason

    def resume(self, next_plan: int, pending_rx: dict[int, Rx]) -> None:
        """Go on from a checkpoint: wait for the restored nodes, re-send their last RXs."""
        self.resumed_from = next_plan
        waiting = {e.identity for e in self.registry.entries()}
        deadline = self.clock.monotonic() + self.options.deadline_s
        while waiting and self.clock.monotonic() < deadline:
            for item in self.poll(0.1):
                waiting.discard(item.identity)
                self.late_frame(item)
        for entry in self.registry.entries():
            if entry.identity in waiting:
                self.registry.gone(entry)
            elif entry.device in pending_rx:
                self.send(entry.identity, pending_rx[entry.device])

    def run(self, first_plan: int | None = None) -> None:
        """The whole run: registration (unless resuming), every exchange, STOP and FINALs."""
        try:
            if first_plan is None:
                self.wait_for_nodes()
                first_plan = 0
            self.state.phase = RUNNING
            self.state.started_wall = self.clock.monotonic()
            self.event("run_resumed" if self.resumed_from is not None else "run_started",
                       nodes=self.config.n_devices, exchanges=len(self.plans),
                       rounds=self.stream.n_rounds, from_exchange=first_plan)
            for plan in self.plans[first_plan:]:
                while self.state.paused and self.state.stop_reason is None:
                    self.keepalive()
                    self.serve(0.1)
                if self.state.stop_reason is not None:
                    break
                self.exchange(plan)
            self.state.phase = FINISHED
        except RunAborted as exc:
            self.state.phase = FAILED
            self.state.error = str(exc)
            raise
        finally:
            self.stop_nodes()

    # ------------------------------------------------------------------ one exchange
    def exchange(self, plan: ExchangePlan) -> None:
        """ROUND -> TXs -> air -> RXs for one plan (see the module docstring)."""
        started = time.perf_counter()
        self.state.exchange = plan.exchange
        message = plan.message()
        expected = {e.identity: e.device for e in self.registry.reachable() if self.send(e.identity, message)}
        answering = np.zeros(self.config.n_devices, dtype=bool)
        answering[list(expected.values())] = True
        self.air.speculate(plan.last_round + 1, answering)  # the radio runs while they compute
        collected = self._collect(plan, expected)
        if collected is None:
            return  # a stop request came while the devices computed: the exchange never was
        txs, stats = collected
        alive = np.zeros(self.config.n_devices, dtype=bool)
        for device in txs:
            alive[device] = True
            self._heard(device, stats.get(device))
        for device in expected.values():
            entry = self.registry.by_device(device)
            if device not in txs and entry is not None and self.registry.missed(entry):
                self.event("node_down", device=device, name=entry.name, reason="silent")
        if not txs and not self.registry.reachable():
            raise RunAborted("every node is down: nothing left to train (restart the nodes to rejoin)")
        outcomes = self.air.resolve_until(plan.last_round + 1, alive)
        delivered = deliver(plan, txs, self.air)
        rxs = {device: delivered.get(device) or silent_rx(plan, self.air) for device in expected.values()}
        self._update_accuracy()
        for outcome in outcomes:
            self.state.round = outcome.round_no
            self.publish_round(outcome)
        self.air.forget_before(plan.first_round)
        if self.on_exchange is not None:  # checkpoint before the RXs leave: a restart re-sends these
            self.on_exchange(ExchangeDone(plan.exchange + 1, rxs, outcomes, plan.first_round))
        for identity, device in expected.items():
            self.send(identity, rxs[device])
        self.exchange_wall_s.append(time.perf_counter() - started)
        if self.options.realtime:
            ahead = self.air.virtual_time_s - self.wall_s()
            if ahead > 0:
                self.serve(ahead)

    def _collect(self, plan: ExchangePlan, expected: dict[bytes, int]
                 ) -> tuple[dict[int, Tx], dict[int, TxStats]] | None:
        """The TXs (and their parsed stats) that came in time; None if the run is stopping."""
        txs: dict[int, Tx] = {}
        stats: dict[int, TxStats] = {}
        start = self.clock.monotonic()
        deadline = start + self.options.deadline_s
        while len(txs) < len(expected):
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                break
            if self.state.stop_reason is not None:
                return None
            arrived = self.poll(min(remaining, POLL_SLICE_S))
            for item in arrived:
                msg = item.message
                if isinstance(msg, Tx) and item.identity in expected and msg.exchange == plan.exchange:
                    if msg.device != expected[item.identity]:
                        self.state.bad_frames += 1
                        continue
                    try:
                        stats[msg.device] = TxStats.from_wire(msg.stats)
                    except ValueError as exc:
                        # Stats are the device's telemetry, not its payloads: the TX still
                        # counts; its model times and accuracy are just not updated.
                        log.warning("TX of device %d without usable stats: %s", msg.device, exc)
                    txs[msg.device] = msg
                    now = self.clock.monotonic()
                    # The rest answer soon after, or they are not coming (dead or hung).
                    deadline = min(start + self.options.deadline_s, now + max(IDLE_GAP_S, 2 * (now - start)))
                elif isinstance(msg, Tx):
                    self.state.stale_frames += 1
                else:
                    self.late_frame(item)
            # Drop expectations of nodes whose socket vanished meanwhile.
            for identity, device in list(expected.items()):
                entry = self.registry.by_device(device)
                if entry is None or entry.identity != identity or entry.status == DOWN:
                    del expected[identity]
            if not arrived and self.link.quiet():
                break  # nobody can answer any more: the rest are silent this exchange
        return txs, stats

    def _heard(self, device: int, stats: TxStats | None) -> None:
        entry = self.registry.by_device(device)
        if entry is None:
            return
        if self.registry.heard(entry):
            self.event("node_up", device=device, name=entry.name)
        if stats is None:
            return
        entry.last_stats = stats
        # The devices' modeled MCU times set the rounds' compute windows (coordinator/engine/medium.py).
        self.air.sample_s[device] = stats.model_sample_s
        self.air.step_s[device] = stats.model_step_s

    def _update_accuracy(self) -> None:
        live = [e.last_stats for e in self.registry.entries() if e.status != DOWN and e.last_stats is not None]
        update = running_accuracy(self.config.mode, live, self.config.schedule.n_test)
        self.state.accuracy = self.state.accuracy.updated(update)

    def publish_round(self, outcome: RoundOutcome) -> None:
        """Send the record of a resolved round to the sink (the air, accuracy and nodes now)."""
        tally = self.air.tally(outcome.round_no)
        record = RoundRecord(air=self.air.round_record(outcome), accuracy=self.state.accuracy,
                             wall_time_s=self.wall_s(),
                             nodes=node_round_views(self.registry.entries(), tally or self.air.totals))
        if self.sink is not None:
            self.sink.record_round(record)

    # ------------------------------------------------------------------ the end
    def stop_nodes(self) -> None:
        """STOP to every live node; collect FINALs until all came or the timeout passed."""
        reason = self.state.stop_reason or ("finished" if self.state.phase == FINISHED else "aborted")
        expected = {e.device for e in self.registry.entries()
                    if e.status != DOWN and self.send(e.identity, Stop(reason=reason))}
        patience = self.options.final_timeout_s
        if self.state.stop_reason is not None or self.state.phase != FINISHED:
            patience = min(patience, STOP_FINAL_TIMEOUT_S)  # stopping: live nodes answer at once
        deadline = self.clock.monotonic() + patience
        while expected - set(self.finals) and self.clock.monotonic() < deadline:
            arrived = self.poll(0.1)
            for item in arrived:
                msg, entry = item.message, self.registry.by_identity(item.identity)
                if isinstance(msg, Final) and entry is not None and entry.device == msg.device:
                    self.finals[msg.device] = msg
                elif isinstance(msg, (Bye, Error)) and entry is not None:  # left, or refused and exits
                    expected.discard(entry.device)
            if not arrived and self.link.quiet():
                break
        self.event("run_finished", phase=self.state.phase, reason=reason)

    @property
    def shown_phase(self) -> str:
        """The phase as ``rocknet status`` shows it (paused while running is "paused")."""
        if self.state.phase == RUNNING and self.state.paused:
            return PAUSED
        return self.state.phase

    @property
    def exchange_mode(self) -> str:
        return "lockstep" if (self.options.lockstep or self.options.realtime) else "batch"
