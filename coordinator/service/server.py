"""The coordinator service: the run engine behind ZeroMQ sockets.

Sockets (all bound by the coordinator):
- ROUTER for nodes (DEALERs): the engine's :class:`~coordinator.service.zmq_link.ZmqLink`.
  Set with ``ROUTER_MANDATORY`` (a send to a vanished node raises instead of vanishing),
  explicit high-water marks, ``MAXMSGSIZE`` and linger 0: the injected, counted loss is the
  only loss. With the in-process backend there is no node socket: the devices run inside
  this process (:class:`~coordinator.engine.inprocess_link.InProcessLink`).
- PUB for monitors: one FeedRound per round, one FeedEvent per change.
- ROUTER for control clients: status, pause/resume/stop, fault injection (control.py).

The service adds what a run needs around the engine: the feed, control, the metrics file,
the coordinator checkpoint (written before every exchange's RXs leave) and resuming from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from coordinator.backends.interface import node_name
from coordinator.engine.engine import (
    FAILED,
    FINISHED,
    PAUSED,
    RUNNING,
    WAITING,
    EngineOptions,
    ExchangeDone,
    RunAborted,
    RunEngine,
    RunState,
)
from coordinator.engine.exchanges import ExchangePlan
from coordinator.engine.inprocess_link import InProcessLink, make_agents
from coordinator.engine.link import NodeLink
from coordinator.engine.medium import Air
from coordinator.engine.records import EventRecord, RoundRecord
from coordinator.engine.registry import Registry
from coordinator.engine.setup import RunSetup
from coordinator.service import run_checkpoint
from coordinator.service.replay_log import CHECKPOINT_INTERVAL_S, Checkpointer
from coordinator.service.control import ControlHandler
from coordinator.service.results import RunWriter
from coordinator.service.scenario import ScenarioEvent
from coordinator.service.zmq_link import ZmqLink
from protocol.net.curve import apply_server_keys
from protocol.net.sockets import control_router, feed_publisher, node_router
from protocol.air.topology import Topology
from protocol.config.run import RunConfig
from protocol.stream.schedule import Stream
from protocol.wire.frames import (
    CONTROL_MAX_BYTES,
    Control,
    ControlReply,
    FeedEvent,
    FeedRound,
    Final,
    ProtocolError,
    Rx,
    decode,
    encode,
)

__all__ = ["Coordinator", "CoordinatorOptions", "Endpoints", "RunAborted",
           "WAITING", "RUNNING", "PAUSED", "FINISHED", "FAILED"]

log = logging.getLogger("rocknet.coordinator")

#: Control requests served per wake-up at most (the rest wait for the next one).
_CONTROL_BURST = 100


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
    in_process: bool = False  # the devices run inside this process (no node socket)
    #: longest wall time between full checkpoints, s (the replay log covers the rest)
    checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S
    speculate: bool = True  # resolve the radio while the devices compute (EngineOptions)

    def engine_options(self) -> EngineOptions:
        return EngineOptions(deadline_s=self.deadline_s, register_timeout_s=self.register_timeout_s,
                             final_timeout_s=self.final_timeout_s, down_after=self.down_after,
                             lockstep=self.lockstep, realtime=self.realtime, speculate=self.speculate)


@dataclass
class Endpoints:
    """The endpoints actually bound (ports resolved when 0 was asked for; nodes empty when
    the devices run in-process)."""

    nodes: str = ""
    feed: str = ""
    control: str = ""


def _bind(sock: zmq.Socket[Any], host: str, port: int) -> str:
    sock.bind(f"tcp://{host}:{'*' if port == 0 else port}")
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


class Coordinator:
    """One training run: the engine, its link, the feed, control and the checkpoint."""

    def __init__(
        self,
        setup: RunSetup,
        options: CoordinatorOptions,
        on_round: Callable[[dict[str, Any]], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        scenario: list[ScenarioEvent] | None = None,
        writer: RunWriter | None = None,
        checkpoint_dir: Path | None = None,
    ) -> None:
        self.options = options
        self.on_round = on_round
        self.on_event = on_event
        self.writer = writer  # metrics.jsonl, summary.json...
        self.checkpoint_path = None if checkpoint_dir is None else Path(checkpoint_dir) / run_checkpoint.FILENAME
        self.endpoints = Endpoints()
        self.ctx = zmq.Context()
        self.auth: Any = None
        self.feed = feed_publisher(self.ctx)
        self.ctl = control_router(self.ctx)
        link = self._in_process_link(setup, checkpoint_dir) if options.in_process else self._zmq_link()
        self.endpoints.feed = _bind(self.feed, options.host, options.feed_port)
        self.endpoints.control = _bind(self.ctl, options.host, options.control_port)
        self.engine = RunEngine(setup, link, options.engine_options(), sink=self)
        if self.endpoints.nodes:
            self.engine.join_hint = f"start the missing nodes (rocknet node --connect {self.endpoints.nodes})"
        if isinstance(link, ZmqLink):
            link.on_bad_frame = self._count_bad_frame
        self.control = ControlHandler(self, scenario)
        self.engine.air.before_round = self.control.apply_due
        self.engine.air.events_pending = lambda: bool(self.control.pending)
        self.engine.on_exchange = self._checkpoint
        self.checkpointer = (None if self.checkpoint_path is None
                             else Checkpointer(self.checkpoint_path, self.engine,
                                               options.checkpoint_interval_s))

    # ------------------------------------------------------------------ links
    def _zmq_link(self) -> ZmqLink:
        o = self.options
        # ROUTER_HANDOVER: a node that comes back under the same name (its routing id)
        # replaces the old link (protocol/net/sockets.py).
        nodes = node_router(self.ctx)
        if o.curve_dir is not None:
            self.auth = apply_server_keys(self.ctx, [nodes, self.ctl], o.curve_dir)
        self.endpoints.nodes = _bind(nodes, o.host, o.node_port)
        link = ZmqLink(nodes, authenticated=self.auth is not None)
        link.serve_also(self.ctl, self._serve_control)
        return link

    def _in_process_link(self, setup: RunSetup, checkpoint_dir: Path | None) -> InProcessLink:
        node_checkpoints = None if checkpoint_dir is None else Path(checkpoint_dir) / "checkpoints"
        if node_checkpoints is not None:
            node_checkpoints.mkdir(parents=True, exist_ok=True)
        agents = make_agents(setup.config.n_devices, node_name, node_checkpoints)
        return InProcessLink(agents, idle=self._wait_for_control)

    def _count_bad_frame(self) -> None:
        self.engine.state.bad_frames += 1

    # ------------------------------------------------------------------ the engine's view
    @property
    def link(self) -> NodeLink:
        return self.engine.link

    @property
    def state(self) -> RunState:
        return self.engine.state

    @property
    def registry(self) -> Registry:
        return self.engine.registry

    @property
    def air(self) -> Air:
        return self.engine.air

    @property
    def setup(self) -> RunSetup:
        return self.engine.setup

    @property
    def config(self) -> RunConfig:
        return self.engine.config

    @property
    def stream(self) -> Stream:
        return self.engine.stream

    @property
    def plans(self) -> list[ExchangePlan]:
        return self.engine.plans

    @property
    def finals(self) -> dict[int, Final]:
        return self.engine.finals

    @property
    def exchange_wall_s(self) -> list[float]:
        return self.engine.exchange_wall_s

    @property
    def resumed_from(self) -> int | None:
        return self.engine.resumed_from

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.engine.link.close()
        for sock in (self.feed, self.ctl):
            sock.close(linger=0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()

    # ------------------------------------------------------------------ the sink: feed, file
    def event(self, event: str, **data: Any) -> None:
        """Publish a change (node up/down, fault injected...) and log it."""
        self.engine.event(event, **data)

    def record_event(self, record: EventRecord) -> None:
        self.feed.send(encode(FeedEvent(round=record.round_no, event=record.event, data=record.data)))
        line = record.to_json()
        if self.writer is not None:
            self.writer.record(line)
        if self.on_event is not None:
            self.on_event(line)

    def record_round(self, record: RoundRecord) -> None:
        line = record.to_json()
        # Built from the record's plain values, unchecked: a monitor's decode checks the frame.
        self.feed.send(encode(FeedRound.build(round=record.round_no, data=line)))
        if self.writer is not None:
            self.writer.record(line, plain=True)
        if self.on_round is not None:
            self.on_round(line)

    # ------------------------------------------------------------------ control
    def pause(self) -> None:
        """Hold the run before its next exchange (``rocknet pause``); nodes are kept alive."""
        self.state.paused = True
        self.event("paused")

    def resume(self) -> None:
        """Go on after :meth:`pause` (``rocknet resume``)."""
        self.state.paused = False
        self.event("resumed")

    def request_stop(self, reason: str) -> None:
        """End the run after the current exchange; FINALs are collected (``rocknet stop``)."""
        self.engine.request_stop(reason)

    def _serve_control(self) -> None:
        for _ in range(_CONTROL_BURST):
            try:
                parts = self.ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_control(parts)

    def _wait_for_control(self, timeout_s: float) -> None:
        """In-process runs: wait for a control request (the engine has nothing else to do)."""
        if self.ctl.poll(max(0, int(timeout_s * 1000)), zmq.POLLIN):
            self._serve_control()

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

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, done: ExchangeDone) -> None:
        if self.checkpointer is None:
            return
        offset = self.writer.flush() if self.writer is not None else 0
        link = self.engine.link
        frame = link.frame if isinstance(link, ZmqLink) else encode  # sent next: encoded once
        pending = {device: frame(rx) for device, rx in done.rxs.items()}
        self.checkpointer.save(done, pending, offset, self.control.pending)

    def _resume(self) -> int:
        """Restore from the checkpoint; wait for the nodes; re-send the last RXs."""
        assert self.checkpointer is not None
        try:
            resume = self.checkpointer.load()
        except run_checkpoint.CoordinatorCheckpointError as exc:
            raise RunAborted(str(exc)) from exc
        self.control.pending = resume.scenario
        if self.writer is not None:
            self.writer.truncate(resume.metrics_offset)
        log.info("resuming at exchange %d (round %d) from %s", resume.next_plan,
                 self.air.next_round, self.checkpoint_path)
        # Nodes reconnect by themselves (their DEALERs retry) and say they are there.
        pending = {device: decode(raw, expect=Rx) for device, raw in resume.pending_rx.items()}
        self.engine.resume(resume.next_plan, pending)
        return resume.next_plan

    # ------------------------------------------------------------------ phases
    def wait_for_nodes(self) -> None:
        """Block until every device registered (serving control meanwhile)."""
        self._log_waiting()
        self.engine.wait_for_nodes()

    def _log_waiting(self) -> None:
        log.info("waiting for %d nodes on %s", self.config.n_devices, self.endpoints.nodes or "this process")

    def run(self) -> None:
        """The whole run: registration (or resume), every exchange, then STOP and FINALs."""
        first: int | None = None
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            try:
                first = self._resume()
            except BaseException as exc:
                self.state.phase = FAILED
                self.state.error = str(exc)
                self.engine.stop_nodes()
                raise
        else:
            self._log_waiting()
        self.engine.run(first_plan=first)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """The full snapshot a monitor or ``rocknet status`` asks for."""
        e = self.engine
        return {
            "phase": e.shown_phase,
            "dataset": self.config.dataset,
            "protocol": self.setup.protocol,
            "mode": e.exchange_mode,
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
            "wall_time_s": e.wall_s(),
            "bad_frames": self.state.bad_frames,
            "stale_frames": self.state.stale_frames,
            "accuracy": self.state.accuracy.to_json(),
            "faults": self.setup.loss.describe(),
            "nodes": self.registry.snapshot(),
            "topology": _sparse_topology(self.setup.topology),
            "endpoints": {"nodes": self.endpoints.nodes, "feed": self.endpoints.feed,
                          "control": self.endpoints.control},
            "error": self.state.error,
        }


def _sparse_topology(topology: Topology) -> dict[str, Any]:
    """The topology with links as ``[a, b, prr]`` (a dense PRR matrix is too big for 200+ nodes)."""
    data = dict(topology.to_dict())
    data.pop("prr", None)
    data["links"] = [[int(a), int(b), float(p)] for a, b, p in topology.links()]
    return data
