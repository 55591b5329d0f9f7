"""The dashboard: a rich renderable of a :class:`~.state.MonitorState` in a terminal's size.

Pure (no sockets, no clock): tested by printing to a recording console.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from coordinator.ui.monitor.node_table import node_panel
from coordinator.ui.monitor.state import (
    DOWN,
    PROBE_AFTER_S,
    SILENT,
    UP,
    MonitorState,
    number,
)
from coordinator.ui.monitor.text import (
    event_text,
    fault_lines,
    fmt,
    fmt_s,
    one_line,
    sparkline,
)
from coordinator.ui.monitor.topology_panel import topology_panel


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
        "round ", (f"{max(state.round, 0)}/{fmt(rounds)}{share}", "bold"),
        "  epoch ", (f"{fmt(state.epoch)}/{fmt(run.get('epochs'))}", "bold"),
        f"{'  ' + state.kind if state.kind else ''}",
        "  virtual ", (fmt_s(state.virtual_time_s), "bold"),
        "  wall ", (fmt_s(state.wall_time_s), "bold"),
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
        one_line(line)
    return Panel(Group(line1, line2), title="rocknet monitor", title_align="left", padding=(0, 1))


def _training(state: MonitorState, width: int) -> RenderableType:
    """Sparklines in a panel whose inside is ``width`` cells."""
    acc = state.accuracy
    spark_w = max(8, width - 10 - 16 - 2)  # label, value, grid padding
    rows = Table.grid(padding=(0, 1))
    rows.add_column(width=10)
    rows.add_column(width=spark_w, no_wrap=True)
    rows.add_column(width=16, no_wrap=True, overflow="ellipsis")
    rows.add_row(Text("train acc"), Text(sparkline(state.train_accuracy, spark_w, 0.0, 1.0), "green"),
                 Text(fmt(number(acc.get("train_accuracy")), ".3f")))
    rows.add_row(Text("train loss"), Text(sparkline(state.train_loss, spark_w, 0.0), "magenta"),
                 Text(fmt(number(acc.get("train_loss")), ".4f")))
    eval_label = "" if acc.get("eval_epoch") is None else f" (epoch {acc['eval_epoch']})"
    rows.add_row(Text("eval acc"), Text(sparkline(state.eval_accuracy, spark_w, 0.0, 1.0), "cyan"),
                 Text(fmt(number(acc.get("eval_accuracy")), ".3f") + eval_label))
    return Panel(rows, title="accuracy / loss", title_align="left", padding=(0, 1))


def _faults(state: MonitorState, max_lines: int | None) -> RenderableType:
    lines = fault_lines(state.faults, state.next_round)
    body = one_line(Text())
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


def _events(state: MonitorState, max_lines: int) -> RenderableType:
    entries = list(state.events)[-max_lines:] if max_lines > 0 else []
    body = one_line(Text())
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
        node_panel(state, view.width, view.page, node_rows),
        _two(topology_panel(state, half, topo_lines), _events(state, events), view.width),
    )
