"""The coordinator process: the air and the clock, over ZeroMQ.

Sockets (all bound by the coordinator):
- ROUTER for nodes (DEALERs): HELLO/WELCOME, ROUND -> TX -> RX, STOP -> FINAL. Set with
  ``ROUTER_MANDATORY`` (a send to a vanished node raises instead of vanishing), explicit
  high-water marks, ``MAXMSGSIZE`` and linger 0: the injected, counted loss is the only loss.
- PUB for monitors: one FeedRound per round, one FeedEvent per change.
- ROUTER for control clients: status, pause/resume/stop, fault injection (coordinator/service/control.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zmq

from coordinator.engine.medium import Air
from coordinator.engine.registry import DOWN, Registry
from coordinator.service.results import plain_values
from coordinator.engine.exchanges import ExchangePlan, deliver, plan_exchanges, silent_rx
from coordinator.service.run_setup import RunSetup
from protocol.wire.frames import (
    CONTROL_MAX_BYTES,
    DEFAULT_MAX_BYTES,
    Bye,
    Control,
    ControlReply,
    Error,
    FeedEvent,
    FeedRound,
    Final,
    Heartbeat,
    Hello,
    ProtocolError,
    Stop,
    Tx,
    VersionMismatch,
    Welcome,
    decode,
    encode,
)
from protocol.wire.frames import PROTOCOL_VERSION
from protocol.net.keys import hello_refusal, user_of

log = logging.getLogger("rocknet.coordinator")

#: Phases reported by ``rocknet status``.
WAITING, RUNNING, PAUSED, FINISHED, FAILED = "waiting", "running", "paused", "finished", "failed"


class RunAborted(RuntimeError):
    """The run cannot go on (a node refused its configuration, registration timed out...)."""


@dataclass
class CoordinatorOptions:
    """Where to listen and how patient to be (seconds)."""

    host: str = "127.0.0.1"
    node_port: int = 7100
    feed_port: int = 7101
    control_port: int = 7102
    deadline_s: float = 30.0
    register_timeout_s: float = 600.0
    final_timeout_s: float = 20.0
    down_after: int = 3
    lockstep: bool = False
    realtime: bool = False
    curve_dir: Path | None = None


@dataclass
class Endpoints:
    """The endpoints actually bound (ports resolved when 0 was asked for)."""

    nodes: str = ""
    feed: str = ""
    control: str = ""


@dataclass
class RunState:
    """What the coordinator knows about the run while it goes."""

    phase: str = WAITING
    exchange: int = -1
    round: int = 0
    started_wall: float = field(default_factory=time.monotonic)
    bad_frames: int = 0
    stale_frames: int = 0
    dropped_sends: int = 0  # frames to peers whose queue was full (never-reading clients)
    paused: bool = False
    stop_reason: str | None = None
    error: str | None = None
    accuracy: dict[str, Any] = field(default_factory=dict)


class Coordinator:
    """Runs one training run with the nodes that register."""

    def __init__(
        self,
        setup: RunSetup,
        options: CoordinatorOptions,
        on_round: Callable[[dict[str, Any]], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        scenario: list[Any] | None = None,
        writer: Any | None = None,
        checkpoint_dir: Path | None = None,
    ) -> None:
        self.setup = setup
        self.options = options
        self.config = setup.config
        self.stream = setup.stream
        self.registry = Registry(self.config.n_devices, down_after=options.down_after)
        self.air = Air(
            stream=self.stream,
            topology=setup.topology,
            loss=setup.loss,
            protocol=setup.protocol,
            seed=self.config.model.seed,
            series_length=self.config.series_length,
            n_classes=self.config.n_classes,
        )
        self.plans = plan_exchanges(self.stream, lockstep=options.lockstep or options.realtime)
        self.state = RunState()
        self.finals: dict[int, Final] = {}
        self._last_keepalive = 0.0
        self.exchange_wall_s: list[float] = []  # coordinator-side wall time of each exchange
        self.endpoints = Endpoints()
        self._on_round = on_round
        self._on_event = on_event
        self.writer = writer  # coordinator.service.results.RunWriter: metrics.jsonl
        self.checkpoint_path = None if checkpoint_dir is None else Path(checkpoint_dir) / "coordinator.ckpt.npz"
        self.resumed_from: int | None = None
        self.ctx = zmq.Context()
        self._bind()
        from coordinator.service.control import ControlHandler

        self.control = ControlHandler(self, scenario)
        self.air.before_round = self.control.apply_due

    # ------------------------------------------------------------------ sockets
    def _bind(self) -> None:
        o = self.options

        def bind(sock: zmq.Socket, port: int) -> str:
            if port == 0:
                sock.bind(f"tcp://{o.host}:*")
            else:
                sock.bind(f"tcp://{o.host}:{port}")
            return sock.getsockopt_string(zmq.LAST_ENDPOINT)

        self.nodes = self.ctx.socket(zmq.ROUTER)
        self.nodes.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A node that comes back under the same name (its routing id) replaces the old link.
        self.nodes.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.nodes.setsockopt(zmq.LINGER, 0)
        self.nodes.setsockopt(zmq.SNDHWM, 100_000)
        self.nodes.setsockopt(zmq.RCVHWM, 100_000)
        self.nodes.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_BYTES)
        self.feed = self.ctx.socket(zmq.PUB)
        self.feed.setsockopt(zmq.LINGER, 0)
        self.feed.setsockopt(zmq.SNDHWM, 10_000)
        self.ctl = self.ctx.socket(zmq.ROUTER)
        self.ctl.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.ctl.setsockopt(zmq.LINGER, 0)
        self.ctl.setsockopt(zmq.MAXMSGSIZE, CONTROL_MAX_BYTES)
        if o.curve_dir is not None:
            from protocol.net.keys import apply_server_keys

            self.auth = apply_server_keys(self.ctx, [self.nodes, self.ctl], o.curve_dir)
        self.endpoints.nodes = bind(self.nodes, o.node_port)
        self.endpoints.feed = bind(self.feed, o.feed_port)
        self.endpoints.control = bind(self.ctl, o.control_port)
        self.poller = zmq.Poller()
        self.poller.register(self.nodes, zmq.POLLIN)
        self.poller.register(self.ctl, zmq.POLLIN)

    def close(self) -> None:
        for sock in (self.nodes, self.feed, self.ctl):
            sock.close(linger=0)
        auth = getattr(self, "auth", None)
        if auth is not None:
            auth.stop()
        self.ctx.term()

    def _send_node(self, identity: bytes, msg: Any) -> bool:
        """Send to one node; False (and the node marked down) if its socket is gone."""
        return self._send_raw(identity, encode(msg))

    def _send_raw(self, identity: bytes, raw: bytes) -> bool:
        """Send an already encoded frame (see :meth:`_send_node`)."""
        try:
            self.nodes.send_multipart([identity, raw], zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EAGAIN:  # a peer that does not read must not block the run
                self.state.dropped_sends += 1
                if self.state.dropped_sends in (1, 10, 100) or self.state.dropped_sends % 1000 == 0:
                    log.warning("dropped a frame to %r: its queue is full (%d such drops so far)",
                                identity, self.state.dropped_sends)
                return False
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            entry = self.registry.by_identity(identity)
            if entry is not None and self.registry.gone(entry):
                self.event("node_down", device=entry.device, name=entry.name, reason="disconnected")
            return False

    # ------------------------------------------------------------------ checkpoints
    def _has_checkpoint(self) -> bool:
        return self.checkpoint_path is not None and self.checkpoint_path.exists()

    def _checkpoint(self, next_plan: int, pending: dict[int, bytes]) -> None:
        if self.checkpoint_path is None:
            return
        from coordinator.service import run_checkpoint as checkpoint

        offset = self.writer.flush() if self.writer is not None else 0
        checkpoint.save(self.checkpoint_path, self, next_plan, pending, offset)

    def _resume(self) -> int:
        """Restore from the checkpoint; wait for the nodes; re-send the last RXs."""
        from coordinator.service import run_checkpoint as checkpoint

        assert self.checkpoint_path is not None
        try:
            resume = checkpoint.load(self.checkpoint_path, self)
        except checkpoint.CoordinatorCheckpointError as exc:
            raise RunAborted(str(exc)) from exc
        if self.writer is not None:
            self.writer.truncate(resume.metrics_offset)
        self.resumed_from = resume.next_plan
        log.info("resuming at exchange %d (round %d) from %s", resume.next_plan,
                 self.air.next_round, self.checkpoint_path)
        # Nodes reconnect by themselves (their DEALERs retry) and say they are there.
        waiting = {e.identity for e in self.registry.entries()}
        deadline = time.monotonic() + self.options.deadline_s
        while waiting and time.monotonic() < deadline:
            for identity, msg in self._poll(100):
                waiting.discard(identity)
                self._late_frame(identity, msg)
        for entry in self.registry.entries():
            if entry.identity in waiting:
                self.registry.gone(entry)
            elif entry.device in resume.pending_rx:
                self._send_raw(entry.identity, resume.pending_rx[entry.device])
        return resume.next_plan

    # ------------------------------------------------------------------ feed
    def event(self, event: str, **data: Any) -> None:
        """Publish a change (node up/down, fault injected...) and log it."""
        record = {"type": "event", "round": self.air.next_round, "event": event, **data}
        log.info("event %s %s", event, data)
        self.feed.send(encode(FeedEvent(round=self.air.next_round, event=event, data=plain_values(data))))
        if self.writer is not None:
            self.writer.record(record)
        if self._on_event is not None:
            self._on_event(record)

    def _publish_round(self, record: dict[str, Any]) -> None:
        record = plain_values(record)  # once, for the feed and the metrics file
        self.feed.send(encode(FeedRound(round=record["round"], data=record)))
        if self.writer is not None:
            self.writer.record(record, plain=True)
        if self._on_round is not None:
            self._on_round(record)

    # ------------------------------------------------------------------ inbound
    def _poll(self, timeout_ms: int) -> list[tuple[bytes, Any]]:
        """Wait up to ``timeout_ms``; serve control; return decoded node frames."""
        frames: list[tuple[bytes, Any]] = []
        events = dict(self.poller.poll(timeout_ms))
        if self.ctl in events:
            for _ in range(100):
                try:
                    parts = self.ctl.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_control(parts)
        if self.nodes in events:
            for _ in range(10_000):
                try:
                    frames_in = self.nodes.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                if len(frames_in) != 2:
                    self.state.bad_frames += 1
                    continue
                identity, raw = frames_in[0].bytes, frames_in[1].bytes
                # With CURVE a node speaks only under the name of its key (protocol/net/keys.py).
                user = user_of(frames_in[1]) if getattr(self, "auth", None) is not None else None
                if user is not None and user != f"node:{identity.decode(errors='replace')}":
                    self.state.bad_frames += 1
                    log.warning("dropped a frame from %s sent under routing id %r", user, identity)
                    continue
                try:
                    msg = decode(raw)
                except VersionMismatch as exc:
                    self.state.bad_frames += 1
                    log.warning("refused a node on another protocol version: %s", exc)
                    self._send_node(identity, Error(code="version", message=str(exc)))
                    continue
                except ProtocolError as exc:
                    self.state.bad_frames += 1
                    log.warning("dropped a bad frame from a node (%d so far): %s", self.state.bad_frames, exc)
                    continue
                if isinstance(msg, Hello) and (why := hello_refusal(user, msg.name)):
                    self.state.bad_frames += 1
                    log.warning("refused HELLO as %r: %s", msg.name, why)
                    self._send_node(identity, Error(code="auth", message=why))
                elif isinstance(msg, Hello):
                    self._on_hello(identity, msg)
                elif self.registry.by_identity(identity) is None:
                    # Not registered (or registered with a coordinator that crashed before its
                    # first checkpoint): ask it to say HELLO.
                    self.state.stale_frames += 1
                    if not isinstance(msg, (Error, Bye)):
                        self._send_node(identity, Error(code="unknown_node", message="say HELLO first"))
                else:
                    frames.append((identity, msg))
        return frames

    def _on_control(self, parts: list[bytes]) -> None:
        identity, raw, command = parts[0], parts[-1], "?"
        try:
            if len(parts) != 2:
                raise ProtocolError(f"a control request is one frame, got {len(parts) - 1}")
            msg = decode(raw, max_bytes=CONTROL_MAX_BYTES, expect=Control)
            command = msg.command
            reply = self.control.handle(msg)
        except ProtocolError as exc:
            self.state.bad_frames += 1
            reply = ControlReply(ok=False, message=f"bad control frame: {exc}", effective_round=-1, data={})
        except Exception as exc:  # noqa: BLE001 - no control input may stop the run
            self.state.bad_frames += 1
            log.exception("control command %r failed", command)
            reply = ControlReply(ok=False, message=f"{command}: {type(exc).__name__}: {exc}",
                                 effective_round=-1, data={})
        try:
            self.ctl.send_multipart([identity, encode(reply)], zmq.NOBLOCK)
        except zmq.ZMQError:  # gone, or not reading its replies: never block the run
            pass

    def _on_hello(self, identity: bytes, msg: Hello) -> None:
        if msg.version != PROTOCOL_VERSION:
            self.state.bad_frames += 1
            self._send_node(identity, Error(
                code="version",
                message=f"node speaks protocol {msg.version}, coordinator {PROTOCOL_VERSION}: "
                "run the same rocknet version on both",
            ))
            return
        try:
            entry, rejoined = self.registry.register(msg.name, identity, msg.pid)
        except LookupError as exc:
            self.state.stale_frames += 1
            log.warning("refused node %r: %s", msg.name, exc)
            self._send_node(identity, Error(code="full", message=str(exc)))
            return
        welcome = Welcome(
            device=entry.device,
            n_devices=self.config.n_devices,
            config=self.config.to_dict(),
            shard=self.setup.shard(entry.device),
            start_round=self.air.next_round,
        )
        self._send_node(identity, welcome)
        self.event("node_rejoined" if rejoined else "node_registered", device=entry.device,
                   name=entry.name, registered=self.registry.registered)

    # ------------------------------------------------------------------ phases
    def wait_for_nodes(self) -> None:
        """Block until every device registered (serving control meanwhile)."""
        deadline = time.monotonic() + self.options.register_timeout_s
        log.info("waiting for %d nodes on %s", self.config.n_devices, self.endpoints.nodes)
        while not self.registry.complete:
            if self.state.stop_reason is not None:
                raise RunAborted(f"stopped before all nodes registered: {self.state.stop_reason}")
            if time.monotonic() > deadline:
                raise RunAborted(
                    f"only {self.registry.registered} of {self.config.n_devices} nodes registered "
                    f"within {self.options.register_timeout_s:.0f} s: start the missing nodes "
                    f"(rocknet node --connect {self.endpoints.nodes})"
                )
            self._keepalive()
            for identity, msg in self._poll(100):
                self._early_frame(identity, msg)

    def _early_frame(self, identity: bytes, msg: Any) -> None:
        if isinstance(msg, Heartbeat):
            return
        if isinstance(msg, Error):
            entry = self.registry.by_identity(identity)
            who = f"node {entry.name!r} (device {entry.device})" if entry else "a node"
            if entry is not None:
                self.registry.gone(entry)  # it exits: do not wait for its FINAL
            raise RunAborted(f"{who} refused the run: {msg.message}")
        if isinstance(msg, Bye):
            entry = self.registry.by_identity(identity)
            if entry is not None and self.registry.gone(entry):
                self.event("node_down", device=entry.device, name=entry.name, reason=msg.reason)
            return
        self.state.stale_frames += 1

    def run(self) -> None:
        """The whole run: registration, every exchange, then STOP and FINAL collection."""
        try:
            first = self._resume() if self._has_checkpoint() else None
            if first is None:
                self.wait_for_nodes()
                first = 0
            self.state.phase = RUNNING
            self.state.started_wall = time.monotonic()
            self.event("run_resumed" if self.resumed_from is not None else "run_started",
                       nodes=self.config.n_devices, exchanges=len(self.plans),
                       rounds=self.stream.n_rounds, from_exchange=first)
            for plan in self.plans[first:]:
                self._wait_while_paused()
                if self.state.stop_reason is not None:
                    break
                self._exchange(plan)
            self.state.phase = FINISHED
        except RunAborted as exc:
            self.state.phase = FAILED
            self.state.error = str(exc)
            raise
        finally:
            self._stop_nodes()

    def _wait_while_paused(self) -> None:
        while self.state.paused and self.state.stop_reason is None:
            self._keepalive()
            for identity, msg in self._poll(100):
                self._late_frame(identity, msg)

    def _keepalive(self) -> None:
        """While nothing else flows (registration, pause), tell every node we are alive, so
        that none gives up on an idle coordinator (nodes exit after --idle-timeout)."""
        now = time.monotonic()
        if now - self._last_keepalive < 1.0:
            return
        self._last_keepalive = now
        for entry in self.registry.reachable():
            self._send_node(entry.identity, Heartbeat(device=entry.device, exchange=self.state.exchange))

    def _exchange(self, plan: ExchangePlan) -> None:
        started = time.perf_counter()
        self.state.exchange = plan.exchange
        message = plan.message()
        expected: dict[bytes, int] = {}
        for entry in self.registry.reachable():
            if self._send_node(entry.identity, message):
                expected[entry.identity] = entry.device
        txs: dict[int, Tx] = {}
        deadline = time.monotonic() + self.options.deadline_s
        while len(txs) < len(expected):
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            for identity, msg in self._poll(min(remaining_ms, 200)):
                if isinstance(msg, Tx) and identity in expected and msg.exchange == plan.exchange:
                    if msg.device != expected[identity]:
                        self.state.bad_frames += 1
                        continue
                    txs[msg.device] = msg
                elif isinstance(msg, Tx):
                    self.state.stale_frames += 1
                else:
                    self._late_frame(identity, msg)
            # Drop expectations of nodes whose socket vanished meanwhile.
            for identity, device in list(expected.items()):
                entry = self.registry.by_device(device)
                if entry is None or entry.identity != identity:
                    del expected[identity]
        alive = np.zeros(self.config.n_devices, dtype=bool)
        for device, tx in txs.items():
            alive[device] = True
            entry = self.registry.by_device(device)
            if entry is not None:
                entry.last_stats = dict(tx.stats)
                if self.registry.heard(entry):
                    self.event("node_up", device=device, name=entry.name)
                self._note_model_times(device, tx.stats)
        for identity, device in expected.items():
            entry = self.registry.by_device(device)
            if device not in txs and entry is not None and self.registry.missed(entry):
                self.event("node_down", device=device, name=entry.name, reason="silent")
        if not txs and not self.registry.reachable():
            raise RunAborted("every node is down: nothing left to train (restart the nodes to rejoin)")
        outcomes = self.air.resolve_until(plan.last_round + 1, alive)
        rxs = deliver(plan, txs, self.air)
        encoded = {
            device: encode(rxs.get(device) or silent_rx(plan, self.air))
            for device in expected.values()
        }
        self._update_accuracy()
        for outcome in outcomes:
            record = self.air.round_record(outcome)
            record.update(self.state.accuracy)
            record["wall_time_s"] = time.monotonic() - self.state.started_wall
            record["nodes"] = self._node_round_view(outcome)
            self.state.round = outcome.round_no
            self._publish_round(record)
        self.air.forget_before(plan.first_round)
        # Checkpoint before the RXs leave: a restart re-sends exactly these.
        self._checkpoint(plan.exchange + 1, encoded)
        for identity, device in expected.items():
            self._send_raw(identity, encoded[device])
        self.exchange_wall_s.append(time.perf_counter() - started)
        if self.options.realtime:
            ahead = self.air.virtual_time_s - (time.monotonic() - self.state.started_wall)
            if ahead > 0:
                self._sleep_serving(ahead)

    def _sleep_serving(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and self.state.stop_reason is None:
            for identity, msg in self._poll(int(min(left, 0.2) * 1000) + 1):
                self._late_frame(identity, msg)

    def _late_frame(self, identity: bytes, msg: Any) -> None:
        if isinstance(msg, Final):
            entry = self.registry.by_identity(identity)
            if entry is None or entry.device != msg.device:  # a FINAL for another device
                self.state.bad_frames += 1
                return
            self.finals[msg.device] = msg
        elif isinstance(msg, Bye):
            entry = self.registry.by_identity(identity)
            if entry is not None and self.registry.gone(entry):
                self.event("node_down", device=entry.device, name=entry.name, reason=msg.reason)
        elif isinstance(msg, Error):
            entry = self.registry.by_identity(identity)
            log.error("node %s reports: %s", entry.name if entry else "?", msg.message)
            if msg.code in ("ram_budget", "bad_config"):
                raise RunAborted(f"a node refused the run: {msg.message}")
        elif isinstance(msg, Heartbeat):
            pass
        else:
            self.state.stale_frames += 1

    def _note_model_times(self, device: int, stats: dict[str, Any]) -> None:
        if "model_sample_s" in stats:
            self.air.sample_s[device] = float(stats["model_sample_s"])
        if "model_step_s" in stats:
            self.air.step_s[device] = float(stats["model_step_s"])

    def _update_accuracy(self) -> None:
        """Running accuracy as the initiator (or the first live device) sees it."""
        if self.config.mode != "rocknet":  # only owners know labels: add their counts up
            from coordinator.engine.accuracy import live_accuracy

            stats = [e.last_stats for e in self.registry.entries() if e.status != DOWN and e.last_stats]
            self.state.accuracy.update(live_accuracy(stats, self.config.schedule.n_test))
            return
        for entry in self.registry.entries():
            if entry.status == DOWN or not entry.last_stats:
                continue
            stats = entry.last_stats
            acc: dict[str, Any] = {}
            train = stats.get("train")
            if train:
                acc["epoch"] = train["epoch"]
                acc["train_accuracy"] = train["accuracy"]
                acc["train_loss"] = train["loss"]
            ev = stats.get("eval")
            if ev and ev["total"] + ev["skipped"] >= self.config.schedule.n_test:
                acc["eval_accuracy"] = ev["accuracy"]
                acc["eval_loss"] = ev["loss"]
                acc["eval_epoch"] = ev["epoch"]
            self.state.accuracy.update(acc)
            return

    def _node_round_view(self, outcome: Any) -> list[dict[str, Any]]:
        """Per node, plain Python values (read straight from the totals arrays: every round)."""
        t = self.air.totals
        energy = np.round(t.energy_mj, 6).tolist()
        rx, lost, tx = t.rx_packets.tolist(), t.lost_packets.tolist(), t.tx_slots.tolist()
        return [
            {
                "id": e.device,
                "status": DOWN if e.forced_down else e.status,
                "ram_bytes": e.last_stats.get("ram_bytes"),
                "energy_mj": energy[e.device],
                "rx_packets": rx[e.device],
                "lost_packets": lost[e.device],
                "tx_slots": tx[e.device],
            }
            for e in self.registry.entries()
        ]

    def _stop_nodes(self) -> None:
        reason = self.state.stop_reason or ("finished" if self.state.phase == FINISHED else "aborted")
        expected = set()
        for entry in self.registry.entries():
            if entry.status != DOWN and self._send_node(entry.identity, Stop(reason=reason)):
                expected.add(entry.device)
        deadline = time.monotonic() + self.options.final_timeout_s
        while expected - set(self.finals) and time.monotonic() < deadline:
            for identity, msg in self._poll(100):
                if isinstance(msg, Final):
                    entry = self.registry.by_identity(identity)
                    if entry is not None and entry.device == msg.device:
                        self.finals[msg.device] = msg
                elif isinstance(msg, (Bye, Error)):  # left, or refused the run and exits
                    entry = self.registry.by_identity(identity)
                    if entry is not None:
                        expected.discard(entry.device)
        self.event("run_finished", phase=self.state.phase, reason=reason)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """The full snapshot a monitor or ``rocknet status`` asks for."""
        return {
            "phase": WAITING if self.state.phase == WAITING else (
                PAUSED if self.state.paused and self.state.phase == RUNNING else self.state.phase),
            "dataset": self.config.dataset,
            "protocol": self.setup.protocol,
            "mode": "lockstep" if (self.options.lockstep or self.options.realtime) else "batch",
            "training_mode": self.config.mode,
            "n_devices": self.config.n_devices,
            "registered": self.registry.registered,
            "round": self.air.next_round - 1,  # last resolved round (-1: none yet)
            "next_round": self.air.next_round,
            "rounds": self.stream.n_rounds,
            "exchange": self.state.exchange,
            "exchanges": len(self.plans),
            "epochs": self.config.schedule.epochs,
            "virtual_time_s": self.air.virtual_time_s,
            "wall_time_s": time.monotonic() - self.state.started_wall,
            "bad_frames": self.state.bad_frames,
            "stale_frames": self.state.stale_frames,
            "accuracy": dict(self.state.accuracy),
            "faults": self.setup.loss.describe(),
            "nodes": self.registry.snapshot(),
            "topology": _sparse_topology(self.setup.topology),
            "endpoints": {"nodes": self.endpoints.nodes, "feed": self.endpoints.feed,
                          "control": self.endpoints.control},
            "error": self.state.error,
        }


def _sparse_topology(topology: Any) -> dict[str, Any]:
    """The topology with links as ``[a, b, prr]`` (a dense PRR matrix is too big for 200+ nodes)."""
    data = dict(topology.to_dict())
    data.pop("prr", None)
    data["links"] = [[int(a), int(b), float(p)] for a, b, p in topology.links()]
    return data


