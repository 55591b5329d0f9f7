"""Words and glyphs of the dashboard: sparklines, numbers, fault and event lines.

Pure functions of what the feed says; :mod:`.render` arranges them into panels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from rich.text import Text

from coordinator.ui.monitor.history import bucket_mean
from coordinator.ui.monitor.links import freeze
from coordinator.ui.monitor.state import EventEntry

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


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
        data = [bucket_mean([data[i] for i in b]) for b in buckets]
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


def label_histogram_text(counts: Sequence[int] | None, width: int) -> str:
    """A device's training samples per class in ``width`` cells: ``3/0/7`` when that fits,
    else one block per class scaled to the device's largest class (``·`` for none; a
    trailing ``…`` when there are more classes than cells); ``–`` when unknown."""
    if counts is None or width < 1:
        return "–"
    text = "/".join(str(int(c)) for c in counts)
    if len(text) <= width:
        return text
    top = max(counts) if counts else 0
    blocks = ["·" if c <= 0 or top <= 0 else
              SPARK_BLOCKS[min(len(SPARK_BLOCKS) - 1, (len(SPARK_BLOCKS) * int(c) - 1) // top)]
              for c in counts]
    return "".join(blocks) if len(blocks) <= width else "".join(blocks[:width - 1]) + "…"


def fmt(value: Any, spec: str = "", none: str = "–") -> str:
    if value is None:
        return none
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def one_line(text: Text) -> Text:
    """Cut (with an ellipsis) instead of wrapping: the layout counts lines."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


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
        return freeze({k: (link if k == "link" else v) for k, v in f.items() if k != "bad"})

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
