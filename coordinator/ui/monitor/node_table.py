"""The dashboard's node table: fixed-width lines, troubled nodes pinned, the rest paged.

The last column, ``labels``, is the device's training samples per class (``3/0/7``, or a
block per class when that does not fit; from the ``status`` snapshot's
``train_label_histograms``): how non-IID the data placement (``--split``) left it.

A rich Table of hundreds of cells costs ~100 ms per refresh; these plain lines cost ~1 ms.
"""

from __future__ import annotations

import math

from rich.console import RenderableType
from rich.panel import Panel
from rich.text import Text

from coordinator.ui.monitor.state import DOWN, SILENT, UP, MonitorState, NodeRow
from coordinator.ui.monitor.text import fmt, label_histogram_text, one_line

STATUS_STYLE = {UP: "green", SILENT: "yellow", DOWN: "bold red"}


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
NODE_COLUMNS = (("id", 3, True), ("name", 11, False), ("status", 7, False), ("RAM B", 9, True),
                ("energy mJ", 10, True), ("rx", 9, True), ("lost", 7, True), ("decode", 6, True),
                ("labels", 6, False))
LABELS_W = NODE_COLUMNS[-1][1]  # cells of the label histogram (text.label_histogram_text)
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
                  (fmt(r.ram_bytes, ","), ""), (fmt(r.energy_mj, ",.2f"), ""),
                  (fmt(r.rx_packets, ","), ""), (fmt(r.lost_packets, ","), ""),
                  (fmt(ratio, ".2f"), ratio_style),
                  (label_histogram_text(r.label_histogram, LABELS_W), "cyan")]
    out: list[tuple[str, str]] = []
    for k, ((text, style), (_, width, right)) in enumerate(zip(values, NODE_COLUMNS)):
        out.append(((" " * NODE_GAP if k else "") + _cell(text, width, right), style))
    return out


def node_panel(state: MonitorState, width: int, page: int, rows: int | None) -> RenderableType:
    """The node table, as side-by-side groups of plain fixed-width lines (a rich Table of
    hundreds of cells costs ~100 ms per refresh; these lines cost ~1 ms)."""
    groups = max(1, min(4, (width - 4 + GROUP_GAP) // (NODE_TABLE_W + GROUP_GAP)))
    n = len(state.nodes)
    if rows is None:
        groups = min(groups, max(1, math.ceil(n / 25)))  # everything shown: keep it squarish
        shown, note = _node_order(state, None, 0)
    else:
        rows = max(rows, 1)
        shown, note = _node_order(state, rows * groups, page)
        groups = min(groups, max(1, math.ceil(len(shown) / rows)))
    per_group = max(1, math.ceil(len(shown) / groups)) if shown else 1  # balanced columns
    chunks = [shown[i:i + per_group] for i in range(0, len(shown), per_group)] or [[]]
    body = one_line(Text())
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
