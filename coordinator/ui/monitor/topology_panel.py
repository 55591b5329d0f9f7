"""The dashboard's topology panel: each node's neighbours, coloured by effective PRR."""

from __future__ import annotations

import math

from rich.console import RenderableType
from rich.panel import Panel
from rich.text import Text

from coordinator.ui.monitor.links import LinkView
from coordinator.ui.monitor.state import MonitorState
from coordinator.ui.monitor.text import fault_text, one_line


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
    return links.cache[key]


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


def topology_panel(state: MonitorState, width: int, max_lines: int | None) -> RenderableType:
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
    body = one_line(Text.assemble(
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
