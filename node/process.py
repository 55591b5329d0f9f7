"""The device process: a ZeroMQ DEALER that registers, then answers ROUNDs until STOP.

``python -m node --connect tcp://HOST:7100 --name NAME`` (or ``rocknet node ...``).
The process needs no dataset: its shard arrives in WELCOME.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
import zmq

from node.agent import AgentOptions, NodeAgent
from node.watchdog import MemoryWatchdog
from protocol.net.keys import CurveKeyError
from protocol.parent_death import die_with_parent
from protocol.net.sockets import node_dealer
from protocol.wire.frames import (
    Bye,
    Error,
    Final,
    Heartbeat,
    Message,
    ProtocolError,
    decode,
    encode,
)

log = logging.getLogger("rocknet.node")

#: Exit codes a launcher or container runtime can tell apart.
EXIT_OK = 0
EXIT_REFUSED = 2  # configuration refused (RAM budget, version, bad WELCOME)
EXIT_MEMORY = 3  # OS memory cap exceeded
EXIT_LOST = 4  # coordinator silent for too long
#: Seconds without traffic after which an idle node says it is still there.
HEARTBEAT_S = 1.0
#: Milliseconds a stopping node waits for its FINAL to leave the socket.
FINAL_LINGER_MS = 5000


@dataclass(frozen=True)
class NodeOptions:
    """Command-line options of a node process."""

    connect: str
    name: str
    checkpoint_dir: Path | None = None
    mem_limit_mb: int = 0  # 0: no memory (USS) watchdog
    idle_timeout_s: float = 120.0
    curve_dir: Path | None = None
    checkpoint_fsync: bool = False


class NodeProcess:
    """Owns the socket; hands every frame to its :class:`~node.agent.NodeAgent` and sends the replies."""

    def __init__(self, options: NodeOptions) -> None:
        self.options = options
        self.agent = NodeAgent(AgentOptions(
            name=options.name, checkpoint_dir=options.checkpoint_dir,
            checkpoint_fsync=options.checkpoint_fsync, pid=os.getpid(),
        ))
        self.ctx = zmq.Context()
        self.sock = node_dealer(self.ctx, options.name)
        if options.curve_dir is not None:
            from protocol.net.curve import apply_client_keys

            apply_client_keys(self.sock, options.curve_dir, options.name)
        self.sock.connect(options.connect)
        self._stop = False
        self.final_sent = False
        self.exit_code = EXIT_OK
        self.last_sent = time.monotonic()

    def _send(self, msg: Message) -> None:
        self.sock.send(encode(msg), copy=False)
        self.last_sent = time.monotonic()

    # ------------------------------------------------------------------ loop
    def run(self) -> int:
        agent = self.agent
        self._send(agent.hello())
        last_heard = time.monotonic()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop:
            events = dict(poller.poll(200))
            if self.sock not in events:
                if time.monotonic() - self.last_sent > HEARTBEAT_S and agent.device is not None:
                    # Lets a restarted coordinator see that this node is connected.
                    self._send(Heartbeat(device=agent.device.device, exchange=-1))
                if time.monotonic() - last_heard > self.options.idle_timeout_s:
                    log.error(
                        "coordinator at %s silent for %.0f s; giving up (restart the node to rejoin)",
                        self.options.connect, self.options.idle_timeout_s,
                    )
                    self.exit_code = EXIT_LOST
                    break
                continue
            last_heard = time.monotonic()
            raw = self.sock.recv(copy=True)
            try:
                msg = decode(raw)
            except ProtocolError as exc:
                agent.bad_frames += 1
                log.warning("dropped a bad frame (%d so far): %s", agent.bad_frames, exc)
                continue
            if isinstance(msg, Error) and msg.code == "unknown_node":
                # A restarted coordinator that has no record of us: register again.
                log.info("coordinator does not know this node (%s); saying HELLO again", msg.message)
                self._send(agent.hello())
                continue
            if isinstance(msg, Error):
                log.error("coordinator refused this node: %s", msg.message)
                self.exit_code = EXIT_REFUSED
                break
            for reply in agent.handle(msg):
                self._send(reply)
                self.final_sent = self.final_sent or isinstance(reply, Final)
            if agent.refused:
                self.exit_code = EXIT_REFUSED
                self._stop = True
            elif agent.stopped:
                self._stop = True
        return self.exit_code

    def request_stop(self) -> None:
        """Signal handler: say goodbye and leave the loop."""
        device = self.agent.device
        if device is not None and not self._stop:
            try:
                self._send(Bye(device=device.device, reason="signal"))
            except zmq.ZMQError:
                pass
        self._stop = True

    def close(self) -> None:
        # After STOP, let the FINAL (a data-parallel replica's whole head is hundreds of KB)
        # leave before the socket goes; otherwise drop whatever is still queued.
        self.sock.close(linger=FINAL_LINGER_MS if self.final_sent else 0)
        self.ctx.term()


def default_name(environ: Mapping[str, str]) -> str:
    """The node name when ``--name`` is not given.

    ``ROCKNET_NAME``; else, under Docker Swarm, ``ROCKNET_TASK_SLOT`` (the stack file sets it
    to ``{{.Task.Slot}}``, 1-based): slot S is ``node{S-1:02d}``, i.e. device S-1, so a
    replaced task (same slot) gets its device id and checkpoint back; else the hostname.
    """
    if environ.get("ROCKNET_NAME"):
        return environ["ROCKNET_NAME"]
    slot = environ.get("ROCKNET_TASK_SLOT")
    if slot is not None:
        if not slot.isdigit() or int(slot) < 1:
            raise ValueError(f"ROCKNET_TASK_SLOT must be a task slot >= 1 (Swarm's "
                             f"{{{{.Task.Slot}}}}), got {slot!r}; or set ROCKNET_NAME instead")
        return f"node{int(slot) - 1:02d}"
    return socket.gethostname()


def parse_args(argv: list[str] | None = None) -> NodeOptions:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="rocknet node", description="Run one emulated device.")
    p.add_argument("--connect", default=env("ROCKNET_CONNECT", "tcp://127.0.0.1:7100"),
                   help="coordinator's node endpoint (default %(default)s)")
    try:
        name: str | None = default_name(os.environ)
        name_error = ""
    except ValueError as exc:  # an error only when --name is not given either
        name, name_error = None, str(exc)
    p.add_argument("--name", default=name,
                   help="stable name: a restarted node with the same name gets its device id back")
    # str, not Path: argparse converts a string default too, and Path("") is "." (an empty
    # variable must mean "off", not "this directory").
    p.add_argument("--checkpoint-dir", default=env("ROCKNET_CHECKPOINT_DIR"),
                   help="where this node keeps its checkpoint (resumes from it on restart)")
    p.add_argument("--mem-limit-mb", type=int, default=int(env("ROCKNET_MEM_LIMIT_MB", "0")),
                   help="OS memory cap: stop with a clear message when the memory this node owns "
                        "(USS: shared pages not counted) exceeds it (0: off)")
    p.add_argument("--idle-timeout", type=float, default=float(env("ROCKNET_IDLE_TIMEOUT", "120")),
                   help="give up after this many seconds without a frame from the coordinator")
    p.add_argument("--curve-dir", default=env("ROCKNET_CURVE_DIR"),
                   help="directory with CURVE keys (rocknet keys init); off when not given")
    p.add_argument("--checkpoint-fsync", action="store_true",
                   default=env("ROCKNET_CHECKPOINT_FSYNC", "0").lower() in ("1", "true", "yes"),
                   help="fsync every checkpoint (survives host power loss; ~4x slower per step)")
    p.add_argument("--parent-death", action="store_true",
                   help="exit when the launching process dies (set by the local launcher)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    if a.name is None:
        p.error(name_error)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format=f"%(asctime)s node[{a.name}] %(levelname)s %(message)s",
    )
    if a.parent_death:
        die_with_parent(signal.SIGTERM)
    return NodeOptions(
        connect=a.connect,
        name=a.name,
        checkpoint_dir=Path(a.checkpoint_dir) if a.checkpoint_dir else None,
        mem_limit_mb=a.mem_limit_mb,
        idle_timeout_s=a.idle_timeout,
        curve_dir=Path(a.curve_dir) if a.curve_dir else None,
        checkpoint_fsync=a.checkpoint_fsync,
    )


#: Set to a directory to write each node's cProfile of its run loop there (``<name>.prof``):
#: how docs/speed.md finds where a node's time goes.
PROFILE_ENV = "ROCKNET_PROFILE_DIR"


def _run_profiled(proc: NodeProcess) -> int:
    import cProfile

    out = Path(os.environ[PROFILE_ENV])
    out.mkdir(parents=True, exist_ok=True)
    # CPU time, not wall: on a loaded host the wall clock charges other processes to us.
    profiler = cProfile.Profile(time.process_time)
    try:
        return int(profiler.runcall(proc.run))
    finally:
        profiler.dump_stats(str(out / f"{proc.options.name}.prof"))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.checkpoint_dir is not None:
        options.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = NodeProcess(options)
    except CurveKeyError as exc:
        log.error("%s", exc)
        return EXIT_REFUSED
    signal.signal(signal.SIGTERM, lambda *_: proc.request_stop())
    signal.signal(signal.SIGINT, lambda *_: proc.request_stop())
    watchdog = None
    if options.mem_limit_mb > 0:
        watchdog = MemoryWatchdog(options.mem_limit_mb, exit_code=EXIT_MEMORY)
        watchdog.start()
    try:
        return _run_profiled(proc) if os.environ.get(PROFILE_ENV) else proc.run()
    finally:
        proc.close()
        if watchdog is not None:
            watchdog.stop()


if __name__ == "__main__":
    sys.exit(main())
