"""One device's side of the wire, without the wire: frames in, frames out.

:class:`NodeAgent` is what both transports drive: the node process (``node/process.py``:
a ZeroMQ DEALER around one agent) and the coordinator's in-process link (every agent in the
coordinator's process, no sockets). It builds the device from WELCOME, answers ROUND with
TX, applies RX, answers STOP with FINAL, keeps the device's checkpoint, and counts bad and
stale frames; it never blocks and never touches a socket, so both transports train the
same model bit for bit.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from node.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from node.device.factory import AnyDevice, make_device
from node.device.rocknet import DeviceData
from protocol.config.ram_ledger import RamBudgetExceeded
from protocol.config.run import RunConfig
from protocol.stream.modes import TrainingMode
from protocol.wire.frames import Error, Final, Heartbeat, Hello, Message, Round, Rx, Stop, Tx, Welcome

log = logging.getLogger("rocknet.node")


@dataclass(frozen=True)
class AgentOptions:
    """What an agent needs besides its frames."""

    name: str
    checkpoint_dir: Path | None = None
    checkpoint_fsync: bool = False
    #: Least wall time between two checkpoints, s: a save costs ~1 ms, one per optimizer step
    #: was most of a node's CPU per exchange. A node restarted from an older checkpoint
    #: just misses more (its missed items count as lost). Our choice; 0: every step.
    checkpoint_interval_s: float = 1.0
    pid: int = 0


def checkpoint_path(checkpoint_dir: Path | None, name: str) -> Path | None:
    """Where node ``name`` keeps its checkpoint (None: no checkpoints)."""
    if checkpoint_dir is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return checkpoint_dir / f"{safe}.ckpt"


class NodeAgent:
    """Turns coordinator frames into device calls and replies (see the module docstring).

    :meth:`handle` returns the frames to send back (possibly none). :attr:`refused` is set
    when the device refused its configuration (the process exits with ``EXIT_REFUSED``);
    :attr:`stopped` once STOP was answered.
    """

    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.device: AnyDevice | None = None
        self.rounds: dict[int, Round] = {}
        self.bad_frames = 0
        self.stale_frames = 0
        self.last_exchange = -1  # highest exchange answered since the last WELCOME
        self.refused = False
        self.stopped = False
        self._ballast: np.ndarray | None = None
        self._saved_at = float("-inf")  # monotonic time of the last checkpoint
        self._checkpoint = checkpoint_path(options.checkpoint_dir, options.name)

    @property
    def name(self) -> str:
        return self.options.name

    def hello(self) -> Hello:
        return Hello(name=self.options.name, pid=self.options.pid or os.getpid())

    def handle(self, msg: Message) -> list[Message]:
        """Frames to send back for ``msg`` (a frame of no use here is counted stale or bad)."""
        if isinstance(msg, Welcome):
            return self._on_welcome(msg)
        if isinstance(msg, Round):
            return self._on_round(msg)
        if isinstance(msg, Rx):
            self._on_rx(msg)
            return []
        if isinstance(msg, Stop):
            return self._on_stop(msg)
        if isinstance(msg, Heartbeat):
            return []
        self.bad_frames += 1
        log.warning("unexpected %s frame dropped", type(msg).__name__)
        return []

    def _refuse(self, code: str, message: str) -> list[Message]:
        self.refused = True
        return [Error(code=code, message=message)]

    def _on_welcome(self, msg: Welcome) -> list[Message]:
        try:
            config = RunConfig.from_dict(msg.config)
            data = DeviceData.from_shard(msg.shard)
            device = make_device(msg.device, config, data)
        except RamBudgetExceeded as exc:
            log.error("refused: %s", exc)
            return self._refuse("ram_budget", str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure here must reach the operator
            log.exception("cannot build this device from WELCOME")
            return self._refuse("bad_config", f"device {msg.device}: {type(exc).__name__}: {exc}")
        path = checkpoint_path(self.options.checkpoint_dir, self.options.name)
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
            "device %d of %d: kernels [%d, %d), (kernel, dilation) units [%d, %d), %d features, "
            "RAM %d B", msg.device, config.n_devices, device.kernel_start, device.kernel_stop,
            device.unit_start, device.unit_stop, device.n_features, device.ledger.total_bytes,
        )
        return []

    def _on_round(self, msg: Round) -> list[Message]:
        device = self.device
        # No WELCOME yet, or a replay of an older exchange (a restarted coordinator may ask
        # the last one again: that one is answered again).
        if device is None or msg.exchange < self.last_exchange:
            self.stale_frames += 1
            return []
        self.last_exchange = msg.exchange
        self.rounds = {msg.exchange: msg}
        fields = device.tx_payload(msg)
        # The wire form of replace(stats, bad_frames=..., stale_frames=...): the counters
        # come last either way, without rebuilding the record on every exchange.
        stats = device.take_stats()
        stats["bad_frames"] = self.bad_frames
        stats["stale_frames"] = self.stale_frames
        # Built from the device's typed payload, unchecked: the coordinator's decode checks it.
        return [Tx.build(exchange=msg.exchange, device=device.device, stats=stats, **fields)]

    def _on_rx(self, msg: Rx) -> None:
        device = self.device
        round_msg = self.rounds.get(msg.exchange)
        if device is None or round_msg is None:
            self.stale_frames += 1
            return
        cfg = device.config
        # private labels: no label travels (-1)
        lowest = -1 if cfg.mode == TrainingMode.PRIVATE_LABELS else 0
        if (msg.series.shape[1] != cfg.series_length
                or msg.logits.shape[1:] != (cfg.n_devices, cfg.logit_width)
                or (len(msg.labels) and not lowest <= msg.labels.min() <= msg.labels.max() < cfg.n_classes)):
            self.bad_frames += 1  # arrays of another run's shape: would corrupt the device
            log.warning("dropped an RX with series %s, logits %s", msg.series.shape, msg.logits.shape)
            return
        del self.rounds[msg.exchange]
        progress_before = device.progress
        device.on_rx(round_msg, msg)
        path = self._checkpoint
        now = time.monotonic()
        if (path is not None and device.progress != progress_before
                and (device.checkpoint_every_progress or now - self._saved_at >= self.options.checkpoint_interval_s)):
            save_checkpoint(path, device, fsync=self.options.checkpoint_fsync)
            self._saved_at = now

    def _on_stop(self, msg: Stop) -> list[Message]:
        log.info("stop: %s", msg.reason)
        self.stopped = True
        device = self.device
        if device is None:
            return []
        weights, bias = device.weights()
        stats = replace(device.final_record(), ram_bytes=device.ledger.total_bytes,
                        bad_frames=self.bad_frames, stale_frames=self.stale_frames)
        return [Final(device=device.device, weights=weights, bias=bias, stats=stats.to_wire())]


def make_agent(name: str, checkpoint_dir: Path | None = None) -> NodeAgent:
    """The ``rocknet.device_agents`` entry point: a fresh agent for node ``name``."""
    return NodeAgent(AgentOptions(name=name, checkpoint_dir=checkpoint_dir))
