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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from node.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from node.device.rocknet import DeviceData
from node.mcu.memory import RamBudgetExceeded
from node.device.factory import AnyDevice, make_device
from node.watchdog import RssWatchdog
from protocol.net.keys import CurveKeyError
from protocol.wire.frames import (
    DEFAULT_MAX_BYTES,
    Bye,
    Error,
    Final,
    Heartbeat,
    Hello,
    ProtocolError,
    Round,
    Rx,
    Stop,
    Tx,
    Welcome,
    decode,
    encode,
)
from protocol.config.run import RunConfig

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
    mem_limit_mb: int = 0  # 0: no RSS watchdog
    idle_timeout_s: float = 120.0
    curve_dir: Path | None = None
    checkpoint_fsync: bool = False


def routing_id(name: str) -> bytes:
    """ZeroMQ routing id of a node: its name (1..255 bytes, not starting with a zero byte)."""
    raw = name.encode()
    if not raw or len(raw) > 255 or raw[0] == 0:
        raise ValueError(f"node name {name!r} must be 1..255 bytes and not start with NUL")
    return raw


class NodeProcess:
    """Owns the socket; turns frames into :class:`Device` calls and back."""

    def __init__(self, options: NodeOptions) -> None:
        self.options = options
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, DEFAULT_MAX_BYTES)
        self.sock.setsockopt(zmq.SNDHWM, 10_000)
        self.sock.setsockopt(zmq.RCVHWM, 10_000)
        # The name is the routing id: a restarted coordinator can address this node at once,
        # and a restarted node (same name) takes its place (the coordinator sets HANDOVER).
        self.sock.setsockopt(zmq.ROUTING_ID, routing_id(options.name))
        if options.curve_dir is not None:
            from protocol.net.keys import apply_client_keys

            apply_client_keys(self.sock, options.curve_dir, options.name)
        self.sock.connect(options.connect)
        self.device: AnyDevice | None = None
        self.rounds: dict[int, Round] = {}
        self.bad_frames = 0
        self.stale_frames = 0
        self.last_exchange = -1  # highest exchange answered since the last WELCOME
        self._stop = False
        self.final_sent = False
        self.exit_code = EXIT_OK
        self.last_sent = time.monotonic()

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_path(self) -> Path | None:
        if self.options.checkpoint_dir is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.options.name)
        return self.options.checkpoint_dir / f"{safe}.ckpt.npz"

    def _hello(self) -> Hello:
        path = self._checkpoint_path()
        resume = path is not None and path.exists()
        return Hello(name=self.options.name, pid=os.getpid(), resume=resume, checkpoint_round=-1)

    # ------------------------------------------------------------------ frames
    def _send(self, msg: Any) -> None:
        self.sock.send(encode(msg), copy=False)
        self.last_sent = time.monotonic()

    def _on_welcome(self, msg: Welcome) -> None:
        try:
            config = RunConfig.from_dict(msg.config)
            data = DeviceData.from_shard(msg.shard)
            device = make_device(msg.device, config, data)
        except RamBudgetExceeded as exc:
            log.error("refused: %s", exc)
            self._send(Error(code="ram_budget", message=str(exc)))
            self.exit_code = EXIT_REFUSED
            self._stop = True
            return
        except Exception as exc:  # noqa: BLE001 - any failure here must reach the operator
            log.exception("cannot build this device from WELCOME")
            self._send(Error(code="bad_config", message=f"device {msg.device}: {type(exc).__name__}: {exc}"))
            self.exit_code = EXIT_REFUSED
            self._stop = True
            return
        path = self._checkpoint_path()
        if path is not None and path.exists():
            try:
                load_checkpoint(path, device)
                log.info("resumed from checkpoint %s at item %d", path, device.processed_item)
            except CheckpointError as exc:
                log.error("checkpoint refused (%s); starting this device from scratch", exc)
        self.device = device
        ballast_mb = int(os.environ.get("ROCKNET_DEBUG_ALLOCATE_MB", "0"))
        if ballast_mb > 0:
            # Test hook: once registered, hold this much memory, to show what the OS memory
            # cap (container mem_limit or the RSS watchdog) does to a node.
            self._ballast = np.ones(ballast_mb * 1024 * 1024 // 8)
        self.last_exchange = -1
        log.info(
            "device %d of %d: kernels [%d, %d), %d features, RAM %d B",
            msg.device, config.n_devices, device.kernel_start, device.kernel_stop,
            device.n_features, device.ledger.total_bytes,
        )

    def _on_round(self, msg: Round) -> None:
        device = self.device
        # No WELCOME yet, or a replay of an older exchange (a restarted coordinator may ask
        # the last one again: that one is answered again).
        if device is None or msg.exchange < self.last_exchange:
            self.stale_frames += 1
            return
        self.last_exchange = msg.exchange
        self.rounds = {msg.exchange: msg}
        fields = device.tx_payload(msg)
        stats = device.take_stats()
        stats["bad_frames"] = self.bad_frames
        stats["stale_frames"] = self.stale_frames
        self._send(Tx(exchange=msg.exchange, device=device.device, stats=stats, **fields))

    def _on_rx(self, msg: Rx) -> None:
        device = self.device
        round_msg = self.rounds.get(msg.exchange)
        if device is None or round_msg is None:
            self.stale_frames += 1
            return
        cfg = device.config
        lowest = -1 if cfg.mode == "private-labels" else 0  # private labels: no label travels (-1)
        if (msg.series.shape[1] != cfg.series_length
                or msg.logits.shape[1:] != (cfg.n_devices, cfg.n_classes)
                or (len(msg.labels) and not lowest <= msg.labels.min() <= msg.labels.max() < cfg.n_classes)):
            self.bad_frames += 1  # arrays of another run's shape: would corrupt the device
            log.warning("dropped an RX with series %s, logits %s", msg.series.shape, msg.logits.shape)
            return
        del self.rounds[msg.exchange]
        steps_before = device.steps_taken
        device.on_rx(round_msg, msg)
        path = self._checkpoint_path()
        if path is not None and device.steps_taken != steps_before:
            save_checkpoint(path, device, fsync=self.options.checkpoint_fsync)

    def _on_stop(self, msg: Stop) -> None:
        device = self.device
        if device is not None:
            weights, bias = device.weights()
            stats = device.final_metrics()
            stats["ram_bytes"] = device.ledger.total_bytes
            stats["bad_frames"] = self.bad_frames
            stats["stale_frames"] = self.stale_frames
            self._send(Final(device=device.device, weights=weights, bias=bias, stats=stats))
            self.final_sent = True
        log.info("stop: %s", msg.reason)
        self._stop = True

    # ------------------------------------------------------------------ loop
    def run(self) -> int:
        self._send(self._hello())
        last_heard = time.monotonic()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop:
            events = dict(poller.poll(200))
            if self.sock not in events:
                if time.monotonic() - self.last_sent > HEARTBEAT_S and self.device is not None:
                    # Lets a restarted coordinator see that this node is connected.
                    self._send(Heartbeat(device=self.device.device, exchange=-1))
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
                self.bad_frames += 1
                log.warning("dropped a bad frame (%d so far): %s", self.bad_frames, exc)
                continue
            if isinstance(msg, Welcome):
                self._on_welcome(msg)
            elif isinstance(msg, Round):
                self._on_round(msg)
            elif isinstance(msg, Rx):
                self._on_rx(msg)
            elif isinstance(msg, Stop):
                self._on_stop(msg)
            elif isinstance(msg, Heartbeat):
                pass
            elif isinstance(msg, Error) and msg.code == "unknown_node":
                # A restarted coordinator that has no record of us: register again.
                log.info("coordinator does not know this node (%s); saying HELLO again", msg.message)
                self._send(self._hello())
            elif isinstance(msg, Error):
                log.error("coordinator refused this node: %s", msg.message)
                self.exit_code = EXIT_REFUSED
                break
            else:
                self.bad_frames += 1
                log.warning("unexpected %s frame dropped", type(msg).__name__)
        return self.exit_code

    def request_stop(self) -> None:
        """Signal handler: say goodbye and leave the loop."""
        if self.device is not None and not self._stop:
            try:
                self._send(Bye(device=self.device.device, reason="signal"))
            except zmq.ZMQError:
                pass
        self._stop = True

    def close(self) -> None:
        # After STOP, let the FINAL (a data-parallel replica's whole head is hundreds of KB)
        # leave before the socket goes; otherwise drop whatever is still queued.
        self.sock.close(linger=FINAL_LINGER_MS if self.final_sent else 0)
        self.ctx.term()


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the launcher dies, so no node outlives its run."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


def parse_args(argv: list[str] | None = None) -> NodeOptions:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="rocknet node", description="Run one emulated device.")
    p.add_argument("--connect", default=env("ROCKNET_CONNECT", "tcp://127.0.0.1:7100"),
                   help="coordinator's node endpoint (default %(default)s)")
    p.add_argument("--name", default=env("ROCKNET_NAME", socket.gethostname()),
                   help="stable name: a restarted node with the same name gets its device id back")
    p.add_argument("--checkpoint-dir", type=Path, default=env("ROCKNET_CHECKPOINT_DIR"),
                   help="where this node keeps its checkpoint (resumes from it on restart)")
    p.add_argument("--mem-limit-mb", type=int, default=int(env("ROCKNET_MEM_LIMIT_MB", "0")),
                   help="OS memory cap: stop with a clear message when RSS exceeds it (0: off)")
    p.add_argument("--idle-timeout", type=float, default=float(env("ROCKNET_IDLE_TIMEOUT", "120")),
                   help="give up after this many seconds without a frame from the coordinator")
    p.add_argument("--curve-dir", type=Path, default=env("ROCKNET_CURVE_DIR"),
                   help="directory with CURVE keys (rocknet keys init); off when not given")
    p.add_argument("--checkpoint-fsync", action="store_true",
                   default=env("ROCKNET_CHECKPOINT_FSYNC", "0").lower() in ("1", "true", "yes"),
                   help="fsync every checkpoint (survives host power loss; ~4x slower per step)")
    p.add_argument("--parent-death", action="store_true",
                   help="exit when the launching process dies (set by the local launcher)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if a.verbose else logging.INFO,
        format=f"%(asctime)s node[{a.name}] %(levelname)s %(message)s",
    )
    if a.parent_death:
        _die_with_parent()
    return NodeOptions(
        connect=a.connect,
        name=a.name,
        checkpoint_dir=Path(a.checkpoint_dir) if a.checkpoint_dir else None,
        mem_limit_mb=a.mem_limit_mb,
        idle_timeout_s=a.idle_timeout,
        curve_dir=Path(a.curve_dir) if a.curve_dir else None,
        checkpoint_fsync=a.checkpoint_fsync,
    )


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
        watchdog = RssWatchdog(options.mem_limit_mb, exit_code=EXIT_MEMORY)
        watchdog.start()
    try:
        return proc.run()
    finally:
        proc.close()
        if watchdog is not None:
            watchdog.stop()


if __name__ == "__main__":
    sys.exit(main())
