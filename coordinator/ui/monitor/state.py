"""What the monitor knows about a run: a ``status`` snapshot with the feed folded in.

:class:`MonitorState` is pure (no sockets, no clock of its own): :class:`~.follow.Follower`
feeds it, :func:`~.render.render_dashboard` draws it. How a snapshot and the feed meet
(:meth:`MonitorState.apply`):

* a round below the snapshot's ``next_round`` (or an event published before it) proves the
  subscription was live before the snapshot: rounds the snapshot already covers are dropped
  and every later round arrives;
* the round ``next_round`` itself is the first one to apply;
* a later round means rounds were missed (:attr:`Applied.GAP`): the follower takes a fresh
  snapshot (a *resync*).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from coordinator.ui.feed_client import FeedMessage
from coordinator.ui.monitor.history import History
from coordinator.ui.monitor.links import LinkView, active_jams, freeze, link_view
from protocol.wire.frames import FeedRound

#: Node statuses as the coordinator reports them.
UP, SILENT, DOWN = "up", "silent", "down"
#: Seconds of feed silence before the monitor asks ``status`` again (a paused or idle run);
#: the dashboard shows an older feed in yellow.
PROBE_AFTER_S = 5.0
#: Per-node counters a round record carries (``nodes[]`` entries), as :class:`NodeRow` fields.
ROUND_COUNTERS = ("ram_bytes", "energy_mj", "rx_packets", "lost_packets", "tx_slots")


class Applied(enum.Enum):
    """What :meth:`MonitorState.apply` did with a feed message."""

    APPLIED = "applied"  # folded into the state (and worth printing)
    STALE = "stale"  # already covered by the snapshot: dropped
    GAP = "gap"  # rounds were missed: take a fresh snapshot, then apply it again


@dataclass(frozen=True)
class NodeRow:
    """One device as the monitor knows it (cumulative counters since the run started)."""

    id: int
    name: str = ""
    status: str = UP
    joins: int = 0
    pid: int = 0
    ram_bytes: int | None = None  # the node's MCU RAM ledger, bytes
    energy_mj: float | None = None  # cumulative energy, mJ
    rx_packets: int | None = None
    lost_packets: int | None = None
    tx_slots: int | None = None
    decode_ratio: float | None = None  # share of other devices' packets decoded, last round
    alive: bool | None = None  # took part in the last round
    label_histogram: tuple[int, ...] | None = None  # training samples of each class it holds


@dataclass(frozen=True)
class EventEntry:
    """One feed event: the round it was published at, its name and data."""

    round: int
    event: str
    data: dict[str, Any]


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


class MonitorState:
    """A snapshot plus the feed messages applied since, and short histories for sparklines.

    ``next_round`` is the first round not yet seen; ``confirmed`` tells whether the feed has
    been shown to meet the snapshot (see the module docstring).
    """

    def __init__(self, history: int = 1024, max_events: int = 500) -> None:
        if history < 1 or max_events < 1:
            raise ValueError("history and max_events must be >= 1")
        self.run: dict[str, Any] = {}
        self.next_round = 0
        self.confirmed = False
        self._in_step = False  # a round has been applied since the snapshot
        self.epoch: int | None = None
        self.kind: str | None = None
        self.virtual_time_s = 0.0
        self.wall_time_s = 0.0
        self.accuracy: dict[str, Any] = {}
        self.faults: list[dict[str, Any]] = []
        self.topology: dict[str, Any] | None = None
        self.nodes: dict[int, NodeRow] = {}
        self.train_accuracy = History(history)  # per round, whole run
        self.train_loss = History(history)
        self.eval_accuracy = History(history)  # per evaluation pass
        self._eval_key: tuple[Any, Any] | None = None
        self.events: deque[EventEntry] = deque(maxlen=max_events)
        self.rounds_applied = 0
        self.snapshots = 0
        self.resyncs = 0
        self.dropped_frames = 0
        self.last_message_s: float | None = None  # monotonic time of the last feed message
        self.lost_since_s: float | None = None  # monotonic time the coordinator stopped answering
        self._links: tuple[Any, LinkView | None] = (None, None)

    # ------------------------------------------------------------------ snapshot
    @property
    def round(self) -> int:
        """The last round the state covers (-1 before the first)."""
        return self.next_round - 1

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any], history: int = 1024,
                      max_events: int = 500) -> MonitorState:
        state = cls(history=history, max_events=max_events)
        state.load_snapshot(snapshot)
        return state

    def load_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace what the snapshot covers; keep histories unless a new run started."""
        next_round = int(snapshot.get("next_round", int(snapshot.get("round", -1)) + 1))
        if self.snapshots and next_round < self.next_round:  # rounds went backwards: a new run
            self.train_accuracy.clear()
            self.train_loss.clear()
            self.eval_accuracy.clear()
            self._eval_key = None
            self.nodes.clear()
        self.snapshots += 1
        self.next_round = next_round
        self.confirmed = False
        self._in_step = False
        self.refresh(snapshot)

    def refresh(self, snapshot: dict[str, Any]) -> None:
        """Take what a ``status`` answer says about the run, without moving ``next_round``."""
        skip = {"accuracy", "faults", "nodes", "topology", "round", "next_round", "train_label_histograms"}
        self.run.update({k: v for k, v in snapshot.items() if k not in skip})
        self.virtual_time_s = float(snapshot.get("virtual_time_s") or self.virtual_time_s)
        self.wall_time_s = float(snapshot.get("wall_time_s") or self.wall_time_s)
        if isinstance(snapshot.get("accuracy"), dict):
            self._take_accuracy(snapshot["accuracy"], record=False)
        if isinstance(snapshot.get("faults"), list):
            self.faults = list(snapshot["faults"])
        if isinstance(snapshot.get("topology"), dict):
            self.topology = snapshot["topology"]
        for entry in snapshot.get("nodes") or []:
            row = self._node(int(entry["id"]))
            self._update(row, name=str(entry.get("name", row.name)),
                         status=str(entry.get("status", row.status)),
                         joins=int(entry.get("joins", row.joins) or 0),
                         pid=int(entry.get("pid", row.pid) or 0))
        hists = snapshot.get("train_label_histograms")  # per device, fixed at setup
        for device, counts in enumerate(hists if isinstance(hists, list) else []):
            if isinstance(counts, list):
                self._update(self._node(device), label_histogram=tuple(int(c) for c in counts))
        for device in range(int(self.run.get("n_devices") or 0)):
            self._node(device)
        self.lost_since_s = None

    def _node(self, device: int) -> NodeRow:
        row = self.nodes.get(device)
        if row is None:
            row = self.nodes[device] = NodeRow(id=device)
        return row

    def _update(self, row: NodeRow, **changes: Any) -> None:
        self.nodes[row.id] = replace(row, **changes)

    # ------------------------------------------------------------------ feed
    def apply(self, msg: FeedMessage, now_s: float | None = None) -> Applied:
        """Fold one feed message in; see :class:`Applied`. ``now_s``: monotonic seconds."""
        if now_s is not None:
            self.last_message_s = now_s
            self.lost_since_s = None
        if isinstance(msg, FeedRound):
            if msg.round < self.next_round and not self._in_step:
                self.confirmed = True  # published before the snapshot: covered by it
                return Applied.STALE
            if msg.round != self.next_round:
                return Applied.GAP  # missed rounds, or (going backwards) a new run
            self.confirmed = self._in_step = True
            self._apply_round(msg.data)
            self.next_round = msg.round + 1
            return Applied.APPLIED
        if not self.confirmed and msg.round <= self.next_round:
            self.confirmed = True  # published before round next_round: no round can be missed
            if msg.round < self.next_round:
                return Applied.STALE
        self._apply_event(msg.round, msg.event, msg.data)
        return Applied.APPLIED

    def _apply_round(self, data: dict[str, Any]) -> None:
        self.rounds_applied += 1
        if self.run.get("phase") in (None, "waiting"):
            self.run["phase"] = "running"
        if data.get("epoch") is not None:
            self.epoch = int(data["epoch"])
        self.kind = data.get("kind", self.kind)
        self.virtual_time_s = float(data.get("virtual_time_s") or self.virtual_time_s)
        self.wall_time_s = float(data.get("wall_time_s") or self.wall_time_s)
        self._take_accuracy(data, record=True)
        if isinstance(data.get("loss"), list):
            self.faults = list(data["loss"])
        changes: dict[int, dict[str, Any]] = {}
        for entry in data.get("nodes") or []:
            device = int(entry["id"])
            change = changes.setdefault(device, {})
            if entry.get("status"):
                change["status"] = str(entry["status"])
            change.update({k: entry[k] for k in ROUND_COUNTERS if entry.get(k) is not None})
        for device, ratio in enumerate(data.get("decoded_ratio") or []):
            changes.setdefault(device, {})["decode_ratio"] = None if ratio is None else float(ratio)
        for device, flag in enumerate(data.get("alive") or []):
            changes.setdefault(device, {})["alive"] = bool(flag)
        for device, change in changes.items():
            self._update(self._node(device), **change)

    def _take_accuracy(self, data: dict[str, Any], record: bool) -> None:
        keys = ("epoch", "train_accuracy", "train_loss", "eval_accuracy", "eval_epoch")
        self.accuracy.update({k: data[k] for k in keys if data.get(k) is not None})
        if data.get("epoch") is not None:
            self.epoch = int(data["epoch"])
        if record:
            self.train_accuracy.append(number(self.accuracy.get("train_accuracy")))
            self.train_loss.append(number(self.accuracy.get("train_loss")))
        eval_key = (self.accuracy.get("eval_epoch"), self.accuracy.get("eval_accuracy"))
        if eval_key[1] is not None and eval_key != self._eval_key:
            self._eval_key = eval_key
            self.eval_accuracy.append(float(eval_key[1]))

    def _apply_event(self, round_no: int, event: str, data: dict[str, Any]) -> None:
        self.log(EventEntry(round_no, event, dict(data)))
        device = data.get("device")
        row = self._node(int(device)) if isinstance(device, int) else None
        if event in ("node_registered", "node_rejoined") and row is not None:
            joins = row.joins + 1 if event == "node_rejoined" else max(row.joins, 1)
            self._update(row, name=str(data.get("name", row.name)), status=UP, joins=joins)
            if data.get("registered") is not None:
                self.run["registered"] = int(data["registered"])
        elif event == "node_up" and row is not None:
            self._update(row, status=UP)
        elif event == "node_down" and row is not None:
            self._update(row, status=DOWN)
        elif event == "paused":
            self.run["phase"] = "paused"
        elif event in ("resumed", "run_started"):
            self.run["phase"] = "running"
            if data.get("rounds") is not None:
                self.run["rounds"] = int(data["rounds"])
        elif event == "run_finished":
            self.run["phase"] = str(data.get("phase") or "finished")
        if isinstance(data.get("faults"), list):
            self.faults = list(data["faults"])

    def log(self, entry: EventEntry) -> None:
        """Add a line to the event log (feed events, and the monitor's own notes)."""
        self.events.append(entry)

    # ------------------------------------------------------------------ derived
    @property
    def finished(self) -> bool:
        return self.run.get("phase") in ("finished", "failed")

    def link_view(self) -> LinkView | None:
        """Effective link PRRs now (cached until the faults or the active jammers change)."""
        if self.topology is None:
            return None
        key = (id(self.topology), freeze(self.faults), active_jams(self.faults, self.next_round))
        if self._links[0] != key:
            self._links = (key, link_view(self.topology, self.faults, self.next_round))
        return self._links[1]

    def status_counts(self) -> dict[str, int]:
        """Nodes per status (``up``, ``silent``, ``down`` always present)."""
        counts = {UP: 0, SILENT: 0, DOWN: 0}
        for row in self.nodes.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts
