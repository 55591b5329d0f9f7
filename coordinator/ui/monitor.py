"""``rocknet monitor``: follow a running coordinator, as a live dashboard or as JSON lines.

Attaching (:class:`Follower`): subscribe to the feed first, then ask the control socket for
a full snapshot (``status``), then apply feed messages on top of it. PUB/SUB delivers in
order and without loss once a subscription is live, but a new subscription takes effect at
the publisher a little later than ``connect()`` returns, so the first message received
decides whether the snapshot and the feed meet (:meth:`MonitorState.apply`):

* a round below the snapshot's ``next_round`` (or an event published before it) proves the
  subscription was live before the snapshot: rounds the snapshot already covers are dropped
  and every later round arrives;
* the round ``next_round`` itself is the first one to apply;
* a later round means rounds were missed: the monitor takes a fresh snapshot (a *resync*).

The same check catches any later gap (e.g. a subscriber buffer overflow) and a new run on
the same ports (rounds start again at 0). The monitor only reads: ``status`` requests and a
subscription; it never changes the run.

:class:`MonitorState` folds a snapshot and feed messages into what the dashboard shows, and
:func:`render_dashboard` turns a state into a rich renderable; both are pure (no sockets),
so they are tested without a coordinator.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence, TextIO

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from coordinator.ui.control_client import ControlClient, ControlTimeout
from coordinator.ui.feed_client import (
    CurveSetup,
    EndpointError,
    Endpoints,
    FeedClient,
    FeedMessage,
    feed_port_of,
    resolve_endpoints,
)
from protocol.wire.frames import FeedRound

__all__ = [
    "Applied", "CoordinatorGone", "EventEntry", "Follower", "History", "LinkView", "MonitorState",
    "NodeRow", "Output", "SnapshotRefused", "View", "event_text", "fault_lines", "fault_text",
    "link_view", "render_dashboard", "run_monitor", "sparkline", "take_snapshot",
]

#: Dashboard refreshes per second.
REFRESH_HZ = 4.0
#: Seconds the first snapshot is held back waiting for the feed to prove it is in sync.
SYNC_HOLD_S = 1.0
#: Seconds of feed silence before the monitor asks ``status`` again (a paused or idle run).
PROBE_AFTER_S = 5.0
#: Seconds without any answer from the coordinator before ``--jsonl`` gives up.
LOST_AFTER_S = 30.0
#: Seconds to wait for one ``status`` answer.
SNAPSHOT_TIMEOUT_S = 2.0
#: Seconds each page of healthy nodes stays on screen when not all nodes fit.
PAGE_S = 3.0

UP, SILENT, DOWN = "up", "silent", "down"
STATUS_STYLE = {UP: "green", SILENT: "yellow", DOWN: "bold red"}
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


# ============================================================================ the state
class Applied(enum.Enum):
    """What :meth:`MonitorState.apply` did with a feed message."""

    APPLIED = "applied"  # folded into the state (and worth printing)
    STALE = "stale"  # already covered by the snapshot: dropped
    GAP = "gap"  # rounds were missed: take a fresh snapshot, then apply it again


@dataclass
class NodeRow:
    """One device as the monitor knows it (cumulative counters since the run started)."""

    id: int
    name: str = ""
    status: str = UP
    joins: int = 0
    pid: int = 0
    ram_bytes: int | None = None
    energy_mj: float | None = None
    rx_packets: int | None = None
    lost_packets: int | None = None
    tx_slots: int | None = None
    decode_ratio: float | None = None  # share of other devices' packets decoded, last round
    alive: bool | None = None  # took part in the last round


@dataclass(frozen=True)
class EventEntry:
    """One feed event: the round it was published at, its name and data."""

    round: int
    event: str
    data: dict[str, Any]


class History:
    """A series over the whole run in at most ``2 * capacity`` points: when full, pairs of
    points are merged (mean; None if both are missing) and later points are taken in pairs."""

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.stride = 1  # rounds per stored point
        self._points: list[float | None] = []
        self._pending: list[float | None] = []

    def append(self, value: float | None) -> None:
        self._pending.append(value)
        if len(self._pending) < self.stride:
            return
        self._points.append(_bucket_mean(self._pending))
        self._pending = []
        if len(self._points) >= 2 * self.capacity:
            pts = self._points
            self._points = [_bucket_mean(pts[i:i + 2]) for i in range(0, len(pts), 2)]
            self.stride *= 2

    def clear(self) -> None:
        self.stride = 1
        self._points, self._pending = [], []

    def values(self) -> list[float | None]:
        return self._points + ([_bucket_mean(self._pending)] if self._pending else [])

    def __len__(self) -> int:
        return len(self._points) + (1 if self._pending else 0)

    def __iter__(self) -> Iterator[float | None]:
        return iter(self.values())


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
        self._in_step = False
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
    def from_snapshot(cls, snapshot: dict[str, Any], **kwargs: Any) -> MonitorState:
        state = cls(**kwargs)
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
        self._in_step = False  # a round has been applied since the snapshot
        self.refresh(snapshot)

    def refresh(self, snapshot: dict[str, Any]) -> None:
        """Take what a ``status`` answer says about the run, without moving ``next_round``."""
        skip = {"accuracy", "faults", "nodes", "topology", "round", "next_round"}
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
            row.name = str(entry.get("name", row.name))
            row.status = str(entry.get("status", row.status))
            row.joins = int(entry.get("joins", row.joins) or 0)
            row.pid = int(entry.get("pid", row.pid) or 0)
        n = int(self.run.get("n_devices") or 0)
        for device in range(n):
            self._node(device)
        self.lost_since_s = None

    def _node(self, device: int) -> NodeRow:
        row = self.nodes.get(device)
        if row is None:
            row = self.nodes[device] = NodeRow(id=device)
        return row

    # ------------------------------------------------------------------ feed
    def apply(self, msg: FeedMessage, now_s: float | None = None) -> Applied:
        """Fold one feed message in; see :class:`Applied`."""
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
            self._apply_round(msg.round, msg.data)
            self.next_round = msg.round + 1
            return Applied.APPLIED
        if not self.confirmed and msg.round <= self.next_round:
            self.confirmed = True  # published before round next_round: no round can be missed
            if msg.round < self.next_round:
                return Applied.STALE
        self._apply_event(msg.round, msg.event, msg.data)
        return Applied.APPLIED

    def _apply_round(self, round_no: int, data: dict[str, Any]) -> None:
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
        ratios = data.get("decoded_ratio") or []
        alive = data.get("alive") or []
        for entry in data.get("nodes") or []:
            row = self._node(int(entry["id"]))
            row.status = str(entry.get("status") or row.status)
            for key in ("ram_bytes", "energy_mj", "rx_packets", "lost_packets", "tx_slots"):
                if entry.get(key) is not None:
                    setattr(row, key, entry[key])
        for device, ratio in enumerate(ratios):
            self._node(device).decode_ratio = None if ratio is None else float(ratio)
        for device, flag in enumerate(alive):
            self._node(device).alive = bool(flag)

    def _take_accuracy(self, data: dict[str, Any], record: bool) -> None:
        keys = ("epoch", "train_accuracy", "train_loss", "eval_accuracy", "eval_epoch")
        self.accuracy.update({k: data[k] for k in keys if data.get(k) is not None})
        if data.get("epoch") is not None:
            self.epoch = int(data["epoch"])
        if record:
            self.train_accuracy.append(_num(self.accuracy.get("train_accuracy")))
            self.train_loss.append(_num(self.accuracy.get("train_loss")))
        eval_key = (self.accuracy.get("eval_epoch"), self.accuracy.get("eval_accuracy"))
        if eval_key[1] is not None and eval_key != self._eval_key:
            self._eval_key = eval_key
            self.eval_accuracy.append(float(eval_key[1]))

    def _apply_event(self, round_no: int, event: str, data: dict[str, Any]) -> None:
        self.events.append(EventEntry(round_no, event, dict(data)))
        device = data.get("device")
        row = self._node(int(device)) if isinstance(device, int) else None
        if event in ("node_registered", "node_rejoined") and row is not None:
            row.name = str(data.get("name", row.name))
            row.status = UP
            row.joins = row.joins + 1 if event == "node_rejoined" else max(row.joins, 1)
            if data.get("registered") is not None:
                self.run["registered"] = int(data["registered"])
        elif event == "node_up" and row is not None:
            row.status = UP
        elif event == "node_down" and row is not None:
            row.status = DOWN
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

    # ------------------------------------------------------------------ derived
    @property
    def finished(self) -> bool:
        return self.run.get("phase") in ("finished", "failed")

    def link_view(self) -> LinkView | None:
        """Effective link PRRs now (cached until the faults or the active jammers change)."""
        if self.topology is None:
            return None
        key = (id(self.topology), _freeze(self.faults), _active_jams(self.faults, self.next_round))
        if self._links[0] != key:
            self._links = (key, link_view(self.topology, self.faults, self.next_round))
        return self._links[1]

    def status_counts(self) -> dict[str, int]:
        counts = {UP: 0, SILENT: 0, DOWN: 0}
        for row in self.nodes.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _active_jams(faults: list[dict[str, Any]], round_no: int) -> tuple[Any, ...]:
    out = []
    for f in faults:
        if f.get("kind") == "jam":
            start, stop = f.get("from_round") or 0, f.get("to_round")
            out.append(start <= round_no and (stop is None or round_no < stop))
    return tuple(out)


# ============================================================================ links
@dataclass(frozen=True)
class LinkView:
    """Topology links with the faults applied (PRR in [0, 1], ``prr[a, b]``: b hears a).

    The ``pair_*`` matrices are symmetric and describe the undirected pair ``{a, b}``:
    ``pair_prr`` the effective PRR of its worse existing direction (NaN: no link),
    ``pair_down`` whether it is cut (link-down in either direction, or an end node down),
    ``pair_degraded`` whether a fault lowered either direction.
    """

    base: np.ndarray  # float64 [n, n], the topology's PRRs
    prr: np.ndarray  # float64 [n, n], with every fault applied
    roles: tuple[str, ...]
    down_links: frozenset[tuple[int, int]]  # explicitly cut (link-down), directed
    down_nodes: frozenset[int]
    unknown_faults: tuple[dict[str, Any], ...]  # faults this monitor could not interpret
    pair_prr: np.ndarray = field(init=False, repr=False)
    pair_down: np.ndarray = field(init=False, repr=False)
    pair_degraded: np.ndarray = field(init=False, repr=False)
    cache: dict[Any, Any] = field(init=False, repr=False, compare=False)  # rendered pieces

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache", {})
        exists = self.base > 0
        directed = np.where(exists, self.prr, np.inf)
        pair = np.minimum(directed, directed.T)
        pair[np.isinf(pair)] = np.nan
        down = np.zeros(exists.shape, dtype=bool)
        for a, b in self.down_links:
            down[a, b] = down[b, a] = True
        for node in self.down_nodes:
            down[node, :] = down[:, node] = True
        down &= exists | exists.T
        lowered = exists & (self.prr < self.base - 1e-12)
        object.__setattr__(self, "pair_prr", pair)
        object.__setattr__(self, "pair_down", down)
        object.__setattr__(self, "pair_degraded", down | lowered | lowered.T)

    @property
    def n_nodes(self) -> int:
        return len(self.roles)

    def neighbours(self, i: int) -> list[int]:
        return [int(j) for j in np.flatnonzero(~np.isnan(self.pair_prr[i]))]

    def counts(self) -> tuple[int, int, int]:
        """Undirected ``(links, degraded but up, down or at PRR 0)``."""
        upper = np.triu(~np.isnan(self.pair_prr), 1)
        dead = upper & (self.pair_down | (np.nan_to_num(self.pair_prr, nan=1.0) <= 0))
        degraded = upper & self.pair_degraded & ~dead
        return int(upper.sum()), int(degraded.sum()), int(dead.sum())


def link_view(topology: dict[str, Any], faults: list[dict[str, Any]], round_no: int) -> LinkView | None:
    """Apply the coordinator's fault list (``LossModel.describe()``) to a topology dict.

    The faults are replayed on a :class:`protocol.air.loss.LossModel`, so the static PRRs are the
    ones the radio uses for ``round_no``; Gilbert–Elliott links are shown at their mean loss
    ``pi_bad * loss_bad + (1 - pi_bad) * loss_good`` with ``pi_bad = p / (p + r)``, and a node
    that is down loses all its links. None if the topology cannot be read.
    """
    from protocol.air.loss import LossError, LossModel
    from protocol.air.topology import Topology, TopologyError

    try:
        if "prr" not in topology and "links" in topology:  # sparse form: [[a, b, prr], ...]
            n = len(topology["roles"])
            dense = np.zeros((n, n))
            for a, b, p in topology["links"]:
                dense[int(a), int(b)] = float(p)
            topology = dict(topology, prr=dense)
        topo = Topology.from_dict(topology)
    except (TopologyError, TypeError, ValueError, KeyError, IndexError):
        return None
    model = LossModel(topo)
    ge: list[tuple[list[int] | None, float]] = []
    down_links: set[tuple[int, int]] = set()
    down_nodes: set[int] = set()
    unknown: list[dict[str, Any]] = []
    for fault in faults:
        kind, link = fault.get("kind"), fault.get("link")
        try:
            if kind == "bernoulli":
                model.set_bernoulli(fault["p"], link=link, directed=link is not None)
            elif kind == "link_down":
                model.link_down(int(link[0]), int(link[1]), directed=True)
                down_links.add((int(link[0]), int(link[1])))
            elif kind == "node_down":
                model.node_down(int(fault["node"]))
                down_nodes.add(int(fault["node"]))
            elif kind == "jam":
                model.jam(nodes=fault.get("nodes") or None, region=fault.get("region"),
                          prr_factor=fault.get("prr_factor", 0.0),
                          from_round=fault.get("from_round") or 0, to_round=fault.get("to_round"))
            elif kind == "gilbert_elliott":
                p, r = float(fault["p"]), float(fault["r"])
                bad = p / (p + r) if p + r > 0 else 0.0
                mean = bad * float(fault.get("loss_bad", 1.0)) + (1 - bad) * float(fault.get("loss_good", 0.0))
                ge.append((link, mean))
            else:
                unknown.append(fault)
        except (LossError, KeyError, TypeError, ValueError, IndexError):
            unknown.append(fault)
    prr = np.array(model.static_prr(round_no), dtype=np.float64)
    for link, mean in ge:
        if link is None:
            prr *= 1.0 - mean
        else:
            prr[int(link[0]), int(link[1])] *= 1.0 - mean
    for node in down_nodes:
        prr[node, :] = 0.0
        prr[:, node] = 0.0
    return LinkView(np.array(topo.prr), prr, topo.roles, frozenset(down_links),
                    frozenset(down_nodes), tuple(unknown))


# ============================================================================ rendering
@dataclass(frozen=True)
class View:
    """How much room the dashboard has: ``height=None`` shows everything (no truncation).

    ``now_s`` (monotonic) lets the header say how old the last feed message is; ``page``
    picks which healthy nodes show when not all fit.
    """

    width: int = 160
    height: int | None = None
    page: int = 0
    now_s: float | None = None
    max_events: int = 10


def sparkline(values: Iterable[float | None], width: int, lo: float | None = None,
              hi: float | None = None) -> str:
    """Unicode-block sparkline of ``values`` in ``width`` cells (bucket means when longer).

    ``lo``/``hi`` fix the scale (default: the data's range); missing values are blanks.
    """
    data = list(values)
    if width < 1 or not data:
        return ""
    if len(data) > width:
        buckets = np.array_split(np.arange(len(data)), width)
        data = [_bucket_mean([data[i] for i in b]) for b in buckets]
    known = [v for v in data if v is not None]
    if not known:
        return " " * len(data)
    low = min(known) if lo is None else lo
    high = max(known) if hi is None else hi
    span = high - low
    out = []
    for v in data:
        if v is None:
            out.append(" ")
            continue
        level = 0.5 if span <= 0 else (min(max(v, low), high) - low) / span
        out.append(SPARK_BLOCKS[min(len(SPARK_BLOCKS) - 1, int(level * len(SPARK_BLOCKS)))])
    return "".join(out)


def _bucket_mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _fmt(value: Any, spec: str = "", none: str = "–") -> str:
    if value is None:
        return none
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def _header(state: MonitorState, view: View) -> RenderableType:
    run = state.run
    counts = state.status_counts()
    phase = str(run.get("phase") or "?")
    phase_style = {"running": "bold green", "paused": "bold yellow", "waiting": "cyan",
                   "finished": "bold blue", "failed": "bold red"}.get(phase, "white")
    n = int(run.get("n_devices") or len(state.nodes))
    line1 = Text.assemble(
        ("RockNet ", "bold"), (str(run.get("dataset") or "?"), "bold cyan"),
        "  nodes ", (f"{run.get('registered', '?')}/{n}", "bold"),
        " (", (f"{counts.get(UP, 0)} up", "green"), ", ",
        (f"{counts.get(SILENT, 0)} silent", "yellow"), ", ",
        (f"{counts.get(DOWN, 0)} down", "red"), ")",
        "  protocol ", (str(run.get("protocol") or "?"), "bold"),
        "  mode ", str(run.get("mode") or "?"),
        "  phase ", (phase, phase_style),
    )
    rounds = run.get("rounds")
    share = f" ({100 * max(state.round + 1, 0) / rounds:.0f}%)" if rounds else ""
    line2 = Text.assemble(
        "round ", (f"{max(state.round, 0)}/{_fmt(rounds)}{share}", "bold"),
        "  epoch ", (f"{_fmt(state.epoch)}/{_fmt(run.get('epochs'))}", "bold"),
        f"{'  ' + state.kind if state.kind else ''}",
        "  virtual ", (_fmt_s(state.virtual_time_s), "bold"),
        "  wall ", (_fmt_s(state.wall_time_s), "bold"),
    )
    if view.now_s is not None and state.last_message_s is not None:
        age = view.now_s - state.last_message_s
        line2.append(f"  feed {age:.1f} s ago", style="yellow" if age > PROBE_AFTER_S else "dim")
    if state.lost_since_s is not None and view.now_s is not None:
        line2.append(f"  coordinator not answering for {view.now_s - state.lost_since_s:.0f} s",
                     style="bold red")
    if state.dropped_frames:
        line2.append(f"  dropped frames {state.dropped_frames}", style="red")
    if state.resyncs:
        line2.append(f"  resyncs {state.resyncs}", style="yellow")
    if run.get("error"):
        line2.append(f"  error: {run['error']}", style="bold red")
    if state.finished:
        line2.append("  (run over: Ctrl-C to leave)", style="dim")
    for line in (line1, line2):
        _one_line(line)
    return Panel(Group(line1, line2), title="rocknet monitor", title_align="left", padding=(0, 1))


def _one_line(text: Text) -> Text:
    """Cut (with an ellipsis) instead of wrapping: the layout counts lines."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _training(state: MonitorState, width: int) -> RenderableType:
    """Sparklines in a panel whose inside is ``width`` cells."""
    acc = state.accuracy
    spark_w = max(8, width - 10 - 16 - 2)  # label, value, grid padding
    rows = Table.grid(padding=(0, 1))
    rows.add_column(width=10)
    rows.add_column(width=spark_w, no_wrap=True)
    rows.add_column(width=16, no_wrap=True, overflow="ellipsis")
    rows.add_row(Text("train acc"), Text(sparkline(state.train_accuracy, spark_w, 0.0, 1.0), "green"),
                 Text(_fmt(_num(acc.get("train_accuracy")), ".3f")))
    rows.add_row(Text("train loss"), Text(sparkline(state.train_loss, spark_w, 0.0), "magenta"),
                 Text(_fmt(_num(acc.get("train_loss")), ".4f")))
    eval_label = "" if acc.get("eval_epoch") is None else f" (epoch {acc['eval_epoch']})"
    rows.add_row(Text("eval acc"), Text(sparkline(state.eval_accuracy, spark_w, 0.0, 1.0), "cyan"),
                 Text(_fmt(_num(acc.get("eval_accuracy")), ".3f") + eval_label))
    return Panel(rows, title="accuracy / loss", title_align="left", padding=(0, 1))


def fault_text(fault: dict[str, Any], both_ways: bool = False, round_no: int | None = None) -> str:
    """One line for one entry of ``LossModel.describe()`` (``both_ways``: the same fault is
    on the reverse direction too, drawn ``a↔b``; ``round_no``: say whether a jammer's
    window is still ahead or already over at that round)."""
    try:
        return _fault_text(fault, "↔" if both_ways else "→", round_no)
    except (TypeError, KeyError, IndexError, ValueError):
        return " ".join(f"{k}={v}" for k, v in fault.items())


def _fault_text(fault: dict[str, Any], arrow: str, round_no: int | None) -> str:
    kind = fault.get("kind")
    link = fault.get("link")
    where = "every link" if link is None else f"link {link[0]}{arrow}{link[1]}"
    if kind == "bernoulli":
        return f"loss p={fault.get('p')} on {where}"
    if kind == "gilbert_elliott":
        state = " (bad now)" if fault.get("bad") else ""
        return f"bursts p={fault.get('p')} r={fault.get('r')} on {where}{state}"
    if kind == "link_down":
        return f"{where} DOWN"
    if kind == "node_down":
        return f"node {fault.get('node')} DOWN"
    if kind == "jam":
        target = fault.get("nodes") or fault.get("region")
        stop = fault.get("to_round")
        start = fault.get("from_round") or 0
        window = f"from round {start}" + ("" if stop is None else f" to {stop - 1}")
        if round_no is not None and stop is not None and round_no >= stop:
            window += " (over)"
        elif round_no is not None and round_no < start:
            window += " (ahead)"
        return f"jam #{fault.get('id')} on {target} PRR×{fault.get('prr_factor')} {window}"
    return " ".join(f"{k}={v}" for k, v in fault.items())


def fault_lines(faults: list[dict[str, Any]], round_no: int | None = None) -> list[str]:
    """Faults as lines, a directed pair with the same fault both ways merged into ``a↔b``."""
    def key(f: dict[str, Any], reverse: bool) -> Any:
        link = f.get("link")
        if reverse and isinstance(link, list) and len(link) == 2:
            link = [link[1], link[0]]
        return _freeze({k: (link if k == "link" else v) for k, v in f.items() if k != "bad"})

    keys = {key(f, False) for f in faults}
    lines, done = [], set()
    for f in faults:
        k = key(f, False)
        if k in done:
            continue
        link = f.get("link")
        both = isinstance(link, list) and len(link) == 2 and key(f, True) in keys \
            and link[0] != link[1]
        if both:
            done.add(key(f, True))
        done.add(k)
        lines.append(fault_text(f, both_ways=both, round_no=round_no))
    return lines


def _faults(state: MonitorState, max_lines: int | None) -> RenderableType:
    lines = fault_lines(state.faults, state.next_round)
    body = _one_line(Text())
    if not lines:
        body.append("no faults injected", style="dim")
    shown = lines if max_lines is None or len(lines) <= max_lines else lines[: max_lines - 1]
    for i, line in enumerate(shown):
        style = "bold red" if "DOWN" in line else "dim" if line.endswith(")") and "(over)" in line \
            else "yellow"
        body.append(("\n" if i else "") + line, style=style)
    if len(shown) < len(lines):
        body.append(f"\n… {len(lines) - len(shown)} more", style="dim")
    return Panel(body, title=f"faults ({len(lines)})", title_align="left", padding=(0, 1))


def _node_order(state: MonitorState, rows: int | None, page: int) -> tuple[list[NodeRow], str]:
    nodes = [state.nodes[d] for d in sorted(state.nodes)]
    if rows is None or len(nodes) <= rows:
        return nodes, ""
    severity = {DOWN: 0, SILENT: 1}

    def troubled(r: NodeRow) -> bool:
        return r.status != UP or (r.decode_ratio is not None and r.decode_ratio < 0.9)

    pinned = sorted((r for r in nodes if troubled(r)),
                    key=lambda r: (severity.get(r.status, 2), r.decode_ratio or 0.0, r.id))
    pinned = pinned[: max(rows - 1, 1)]
    pinned_ids = {r.id for r in pinned}
    rest = [r for r in nodes if r.id not in pinned_ids]
    room = max(rows - len(pinned), 0)
    pages = max(1, math.ceil(len(rest) / room)) if room else 1
    start = (page % pages) * room
    shown_rest = sorted(rest[start:start + room], key=lambda r: r.id)
    note = (f"{len(pinned)} pinned (not up or decode < 0.9)"
            + (f", others page {page % pages + 1}/{pages}" if room else "")
            + f"; {len(nodes) - len(pinned) - len(shown_rest)} of {len(nodes)} hidden")
    return pinned + shown_rest, note


#: Node table columns: (header, width in cells, right-aligned).
NODE_COLUMNS = (("id", 3, True), ("name", 12, False), ("status", 7, False), ("RAM B", 9, True),
                ("energy mJ", 10, True), ("rx", 9, True), ("lost", 7, True), ("decode", 6, True))
NODE_GAP = 1  # cells between columns
NODE_TABLE_W = sum(w for _, w, _ in NODE_COLUMNS) + NODE_GAP * (len(NODE_COLUMNS) - 1)
GROUP_GAP = 4  # cells between side-by-side node tables


def _cell(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


def _node_segments(r: NodeRow | None) -> list[tuple[str, str]]:
    """One table row as ``(text, style)`` pieces, NODE_TABLE_W cells wide (None: header)."""
    if r is None:
        values = [(h, "bold") for h, _, _ in NODE_COLUMNS]
    else:
        ratio = r.decode_ratio
        ratio_style = ("green" if ratio >= 0.9 else "yellow" if ratio >= 0.5 else "red") \
            if ratio is not None else "dim"
        status = r.status + ("" if r.alive is not False or r.status != UP else "*")
        values = [(str(r.id), ""), (r.name or "–", ""), (status, STATUS_STYLE.get(r.status, "")),
                  (_fmt(r.ram_bytes, ","), ""), (_fmt(r.energy_mj, ",.2f"), ""),
                  (_fmt(r.rx_packets, ","), ""), (_fmt(r.lost_packets, ","), ""),
                  (_fmt(ratio, ".2f"), ratio_style)]
    out: list[tuple[str, str]] = []
    for k, ((text, style), (_, width, right)) in enumerate(zip(values, NODE_COLUMNS)):
        out.append(((" " * NODE_GAP if k else "") + _cell(text, width, right), style))
    return out


def _nodes(state: MonitorState, view: View, rows: int | None) -> RenderableType:
    """The node table, as side-by-side groups of plain fixed-width lines (a rich Table of
    hundreds of cells costs ~100 ms per refresh; these lines cost ~1 ms)."""
    groups = max(1, min(4, (view.width - 4 + GROUP_GAP) // (NODE_TABLE_W + GROUP_GAP)))
    n = len(state.nodes)
    if rows is None:
        groups = min(groups, max(1, math.ceil(n / 25)))  # everything shown: keep it squarish
        shown, note = _node_order(state, None, 0)
    else:
        rows = max(rows, 1)
        shown, note = _node_order(state, rows * groups, view.page)
        groups = min(groups, max(1, math.ceil(len(shown) / rows)))
    per_group = max(1, math.ceil(len(shown) / groups)) if shown else 1  # balanced columns
    chunks = [shown[i:i + per_group] for i in range(0, len(shown), per_group)] or [[]]
    body = _one_line(Text())
    blank = [(" " * NODE_TABLE_W, "")]
    for line in range(-1, max(len(c) for c in chunks)):
        if line >= 0:
            body.append("\n")
        for g, chunk in enumerate(chunks):
            if g:
                body.append(" " * GROUP_GAP)
            pieces = _node_segments(None) if line < 0 else \
                _node_segments(chunk[line]) if line < len(chunk) else blank
            for text, style in pieces:
                body.append(text, style=style or None)
    title = f"nodes ({n})" + (f": {note}" if note else "")
    return Panel(body, title=title, title_align="left", padding=(0, 1))


def _prr_style(prr: float) -> str:
    return "green" if prr >= 0.9 else "yellow" if prr >= 0.5 else "red" if prr > 0 else "bold red"


def _topology_cells(links: LinkView, compact: bool) -> list[tuple[bool, Text]]:
    """Per topology node: (has a poor or degraded link, its coloured neighbour list).

    Compact cells list only links below PRR 0.9 or hit by a fault, then ``+k`` good ones.
    Computed once per link view (the caller must not change the returned Texts).
    """
    key = ("cells", compact)
    if key not in links.cache:
        links.cache[key] = _make_topology_cells(links, compact)
    return links.cache[key]  # type: ignore[no-any-return]


def _make_topology_cells(links: LinkView, compact: bool) -> list[tuple[bool, Text]]:
    cells: list[tuple[bool, Text]] = []
    for i in range(links.n_nodes):
        relay = links.roles[i] != "compute"
        cell = Text(f"{i:>3}{'r' if relay else ' '}│", style="dim bold" if relay else "bold")
        troubled = good = 0
        for j in links.neighbours(i):
            prr = float(links.pair_prr[i, j])
            dead = bool(links.pair_down[i, j]) or prr <= 0
            poor = dead or prr < 0.9 or bool(links.pair_degraded[i, j])
            troubled += poor
            if compact and not poor:
                good += 1
                continue
            cell.append(" ")
            cell.append(f"✗{j}" if dead else str(j), style=_prr_style(0.0 if dead else prr))
        if good:
            cell.append(f" +{good}", style="green")
        cells.append((troubled > 0, cell))
    return cells


def _topology(state: MonitorState, width: int, max_lines: int | None) -> RenderableType:
    links = state.link_view()
    if links is None:
        return Panel(Text("no topology in the snapshot", style="dim"), title="topology",
                     title_align="left")

    def layout(compact: bool) -> tuple[list[Text], int, int]:
        cells = _topology_cells(links, compact)
        cell_w = min(max(len(c.plain) for _, c in cells) + 2, max(width, 10))
        per_line = max(1, width // cell_w)
        ordered = [c for bad, c in cells if bad] + [c for bad, c in cells if not bad]
        return ordered, cell_w, per_line

    ordered, cell_w, per_line = layout(compact=False)
    room = None if max_lines is None else max(1, max_lines - 1)  # minus the legend
    compact = room is not None and math.ceil(len(ordered) / per_line) > room
    if compact:
        ordered, cell_w, per_line = layout(compact=True)
    hidden = 0
    if room is not None and math.ceil(len(ordered) / per_line) > room:
        keep = max(1, (room - 1) * per_line)
        hidden = len(ordered) - keep
        ordered = ordered[:keep]
    pairs, degraded, down = links.counts()
    body = _one_line(Text.assemble(
        f"{pairs} links, ", (f"{degraded} degraded", "yellow"), ", ", (f"{down} down", "red"),
        "  PRR ", ("≥.9", "green"), " ", ("≥.5", "yellow"), " ", ("<.5", "red"), " ",
        ("✗cut", "bold red"), " r relay" + (" +k good" if compact else ""), style="dim"))
    for k in range(0, len(ordered), per_line):
        body.append("\n")
        for cell in ordered[k:k + per_line]:
            body.append_text(cell)
            body.append(" " * max(cell_w - len(cell.plain), 1))
    if hidden:
        body.append(f"\n… {hidden} more nodes (poor links first)", style="dim")
    if links.unknown_faults:
        body.append(f"\n{len(links.unknown_faults)} fault(s) not drawn: "
                    + "; ".join(fault_text(f) for f in links.unknown_faults), style="dim")
    return Panel(body, title="topology: neighbours by effective PRR", title_align="left",
                 padding=(0, 1))


def event_text(entry: EventEntry) -> Text:
    """One event log line (round, what happened)."""
    d = entry.data
    who = f"node {d.get('device')}" + (f" ({d['name']})" if d.get("name") else "")
    e = entry.event
    if e in ("node_registered", "node_rejoined"):
        what = f"{who} {e.split('_')[1]}" + (f" ({d['registered']} registered)" if "registered" in d else "")
        style = "green"
    elif e == "node_up":
        what, style = f"{who} up", "green"
    elif e == "node_down":
        what, style = f"{who} DOWN ({d.get('reason', '?')})", "bold red"
    elif e in ("fault", "scenario"):
        args = " ".join(f"{k}={v}" for k, v in (d.get("args") or {}).items())
        what = f"{e} {d.get('command')} {args}".rstrip()
        if e == "fault" and d.get("effective_round") is not None:
            what += f" (from round {d['effective_round']})"
        if e == "scenario" and d.get("ok") is False:
            what += f": refused: {d.get('message')}"
        style = "bold yellow"
    elif e == "run_started":
        what, style = f"run started: {d.get('nodes')} nodes, {d.get('rounds')} rounds", "bold cyan"
    elif e == "run_finished":
        what, style = f"run finished: {d.get('phase')} ({d.get('reason')})", "bold cyan"
    elif e == "monitor":
        what, style = str(d.get("message", "")), "dim"
    else:
        what = e + (" " + " ".join(f"{k}={v}" for k, v in d.items()) if d else "")
        style = "cyan" if e in ("paused", "resumed") else "white"
    return Text.assemble((f"r{entry.round:>6} ", "dim"), (what, style))


def _events(state: MonitorState, max_lines: int) -> RenderableType:
    entries = list(state.events)[-max_lines:] if max_lines > 0 else []
    body = _one_line(Text())
    if not entries:
        body.append("no events yet", style="dim")
    for i, entry in enumerate(entries):
        if i:
            body.append("\n")
        body.append_text(event_text(entry))
    return Panel(body, title=f"events (last {len(entries)} of {len(state.events)})",
                 title_align="left", padding=(0, 1))


def _two(left: RenderableType, right: RenderableType, width: int,
         ratio: tuple[int, int] = (1, 1)) -> Table:
    """Two panels side by side in ``width`` cells (fixed widths: no measuring)."""
    left_w = (width - 1) * ratio[0] // (ratio[0] + ratio[1])
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=left_w)
    grid.add_column(width=width - 1 - left_w)
    grid.add_row(left, right)
    return grid


def render_dashboard(state: MonitorState, view: View | None = None) -> RenderableType:
    """The dashboard for ``state`` in ``view`` (pure: no sockets, no clock).

    With ``view.height`` set, the node table, topology and event log shrink to fit: nodes
    that are not up or decode poorly stay pinned and the others page with ``view.page``.
    """
    view = view or View()
    half = max(20, view.width // 2 - 5)
    n_faults = len(fault_lines(state.faults))
    fault_rows = max(3, min(n_faults, 6))
    events = view.max_events
    topo_lines: int | None = None
    node_rows: int | None = None
    if view.height is not None:
        top = 4 + fault_rows + 2  # header panel + accuracy/faults row
        bottom = max(events, 8) + 2
        left = view.height - top - bottom - 4  # node panel chrome + table header
        if left < 6:  # small terminal: shrink the bottom row first
            events = max(3, events - (6 - left))
            bottom = max(events, 5) + 2
            left = view.height - top - bottom - 4
        node_rows = max(3, left)
        topo_lines = bottom - 2
    training = _training(state, (view.width - 1) * 3 // 5 - 4)  # inside its panel
    faults = _faults(state, fault_rows if view.height is not None else None)
    return Group(
        _header(state, view),
        _two(training, faults, view.width, (3, 2)),
        _nodes(state, view, node_rows),
        _two(_topology(state, half, topo_lines), _events(state, events), view.width),
    )


# ============================================================================ attaching
class CoordinatorGone(RuntimeError):
    """No coordinator answered within the time allowed."""


class SnapshotRefused(RuntimeError):
    """The coordinator answered ``status`` with an error (its message says why)."""


@dataclass
class Output:
    """Something to print in ``--jsonl`` mode: a snapshot or a feed message."""

    kind: str  # "snapshot" | "round" | "event"
    snapshot: dict[str, Any] = field(default_factory=dict)
    message: FeedMessage | None = None
    resync: bool = False

    def line(self) -> dict[str, Any]:
        """The JSON object of this output (``type`` and ``round`` always present)."""
        if self.kind == "snapshot":
            out: dict[str, Any] = {"type": "snapshot"}
            out.update(self.snapshot)
            out["round"] = int(self.snapshot.get("next_round", 0)) - 1
            if self.resync:
                out["resync"] = True
            return out
        msg = self.message
        assert msg is not None
        if isinstance(msg, FeedRound):
            out = {"type": "round", "round": msg.round}
        else:
            out = {"type": "event", "round": msg.round, "event": msg.event}
        out.update({k: v for k, v in msg.data.items() if k not in out})
        return out


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
                 snapshot_timeout_s: float = SNAPSHOT_TIMEOUT_S, clock: Any = time.monotonic,
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
        self.state.events.append(EventEntry(self.state.round, "monitor", {
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


# ============================================================================ the command
def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def _run_jsonl(follower: Follower, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    count = int(args.count or 0)
    rounds = 0

    def emit(outputs: Sequence[Output]) -> bool:
        nonlocal rounds
        for item in outputs:
            out.write(json.dumps(_json_safe(item.line()), separators=(",", ":"),
                                 allow_nan=False) + "\n")
            if item.kind == "round":
                rounds += 1
                if count and rounds >= count:
                    out.flush()
                    return True
        out.flush()
        return False

    if emit(follower.attach(args.wait, err)):
        return 0
    state = follower.state
    while not state.finished:
        if emit(follower.poll(0.5)):
            return 0
        if state.lost_since_s is not None and follower.clock() - state.lost_since_s > LOST_AFTER_S:
            print(f"rocknet monitor: the coordinator at {follower.endpoints.control} stopped "
                  f"answering {LOST_AFTER_S:.0f} s ago; giving up", file=err)
            return 1
    if count and rounds < count:
        print(f"rocknet monitor: the run ended ({state.run.get('phase')}) after {rounds} of "
              f"{count} rounds", file=err)
        return 1
    return 0


def _run_dashboard(follower: Follower, args: argparse.Namespace, err: TextIO) -> int:
    from rich.live import Live

    follower.attach(args.wait, err)
    console = Console()
    state = follower.state
    count = int(args.count or 0)
    period = 1.0 / REFRESH_HZ
    start = follower.clock()

    def frame() -> RenderableType:
        now = follower.clock()
        size = console.size
        return render_dashboard(state, View(width=size.width, height=size.height,
                                            page=int((now - start) // PAGE_S), now_s=now))

    if not console.is_terminal:
        print("rocknet monitor: stdout is not a terminal: the dashboard is printed once, when "
              "the monitor stops (use --jsonl for a stream of JSON lines)", file=err)
        try:
            while not (count and state.rounds_applied >= count):
                follower.poll(period)
        finally:
            console.print(frame())
        return 0
    with Live(frame(), console=console, screen=True, auto_refresh=False,
              redirect_stderr=False) as live:
        next_frame = follower.clock()
        while not (count and state.rounds_applied >= count):
            follower.poll(max(0.0, next_frame - follower.clock()))
            if follower.clock() >= next_frame:
                live.update(frame(), refresh=True)
                next_frame = follower.clock() + period
    return 0


def _goodbye(state: MonitorState, out: TextIO) -> None:
    acc = state.accuracy
    print(f"rocknet monitor: {state.run.get('phase', '?')} at round {max(state.round, 0)}"
          f"/{state.run.get('rounds', '?')}, train acc {_fmt(_num(acc.get('train_accuracy')), '.3f')}"
          f", eval acc {_fmt(_num(acc.get('eval_accuracy')), '.3f')}", file=out)


def run_monitor(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``rocknet monitor``: 0 when done or on Ctrl-C, 1 if the run ended early or the
    coordinator vanished, 2 for bad arguments, 4 if no coordinator appeared within ``--wait``."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        endpoints = resolve_endpoints(args.connect, args.control_port, args.feed_port)
    except EndpointError as exc:
        print(f"rocknet monitor: {exc}", file=err)
        return 2
    if args.count < 0 or args.wait < 0:
        print("rocknet monitor: --count and --wait must be >= 0", file=err)
        return 2
    follower = Follower(endpoints)
    try:
        if args.jsonl:
            return _run_jsonl(follower, args, out, err)
        code = _run_dashboard(follower, args, err)
        _goodbye(follower.state, out)
        return code
    except KeyboardInterrupt:
        if not args.jsonl and follower.state.snapshots:
            _goodbye(follower.state, out)
        return 0
    except (CoordinatorGone, ControlTimeout, SnapshotRefused) as exc:
        print(f"rocknet monitor: {exc}", file=err)
        return 4
    except BrokenPipeError:  # `rocknet monitor --jsonl | head`: the reader is done
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        follower.close()
