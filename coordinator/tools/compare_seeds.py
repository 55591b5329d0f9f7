"""``rocknet compare --seeds K``: every mode's measures as mean ± std over its seeds.

``compare_seeds.md`` (a row per mode, ``mean ± std`` cells), ``compare_seeds.csv``
(``<measure>_mean`` / ``<measure>_std`` columns) and ``compare_seeds.png`` (a bar per mode,
std error bars). The std is the population standard deviation over the seeds (``ddof=0``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from coordinator.tools.seeds import SeedStat, cell, stat

#: (table-row key, header, unit) aggregated over the seeds; per training sample where it says.
MEASURES = (
    ("bytes_on_air_per_sample", "bytes on air / sample", "B"),
    ("rounds_per_sample", "rounds / sample", ""),
    ("latency_ms_per_sample", "latency / sample", "ms"),
    ("energy_mj_per_device_per_sample", "energy / device / sample", "mJ"),
    ("peak_ram_bytes", "peak RAM / device", "B"),
    ("test_accuracy", "test accuracy", ""),
    ("virtual_time_s", "virtual time", "s"),
    ("wall_time_s", "wall time", "s"),
)


@dataclass(frozen=True)
class ModeSeeds:
    """One compared mode over its seeds: every measure of :data:`MEASURES`."""

    mode: str
    seeds: int
    finished: int  # seeds whose run finished
    stats: dict[str, SeedStat]


def aggregate_modes(per_mode: Mapping[str, Sequence[dict[str, Any]]]) -> list[ModeSeeds]:
    """Per mode, its seeds' table rows (:func:`coordinator.tools.compare.table_row`) aggregated."""
    out = []
    for mode, rows in per_mode.items():
        out.append(ModeSeeds(
            mode=mode, seeds=len(rows), finished=sum(r.get("phase") == "finished" for r in rows),
            stats={key: stat([None if r.get(key) is None else float(r[key]) for r in rows])
                   for key, _, _ in MEASURES}))
    return out


def _head(head: str, unit: str) -> str:
    return f"{head} ({unit})" if unit else head


def markdown(rows: Sequence[ModeSeeds]) -> str:
    """A row per mode: seeds, finished runs and ``mean ± std`` of every measure."""
    heads = [_head(h, u) for _, h, u in MEASURES]
    lines = ["| mode | seeds | finished | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 3)]
    for r in rows:
        lines.append(f"| {r.mode} | {r.seeds} | {r.finished} | "
                     + " | ".join(cell(r.stats[k]) for k, _, _ in MEASURES) + " |")
    return "\n".join(lines)


def write_seed_outputs(rows: Sequence[ModeSeeds], options: Any, out: Path) -> list[Path]:
    """``compare_seeds.md``, ``compare_seeds.csv`` and ``compare_seeds.png`` in ``out``."""
    md = out / "compare_seeds.md"
    md.write_text(f"{options.dataset}, {options.nodes} nodes, {options.protocol}, seeds "
                  f"{options.seed}..{options.seed + options.seeds - 1}: mean ± std over seeds.\n\n"
                  + markdown(rows) + "\n")
    path = out / "compare_seeds.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mode", "seeds", "finished"] + [f"{k}_{s}" for k, _, _ in MEASURES for s in ("mean", "std")])
        for r in rows:
            w.writerow([r.mode, r.seeds, r.finished] + [v for k, _, _ in MEASURES
                                                        for v in (r.stats[k].mean, r.stats[k].std)])
    png = out / "compare_seeds.png"
    plot(rows, png, title=f"{options.dataset}, {options.nodes} nodes, {options.seeds} seeds")
    return [md, path, png]


def plot(rows: Sequence[ModeSeeds], path: Path, title: str = "") -> None:
    """A panel per measure: a bar per mode at its mean, std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 4, figsize=(13, 6.4))
    modes = [r.mode for r in rows]
    for ax, (key, head, unit) in zip(grid.ravel(), MEASURES):
        means = [r.stats[key].mean or 0.0 for r in rows]
        stds = [r.stats[key].std or 0.0 for r in rows]
        ax.bar(range(len(modes)), means, yerr=stds, capsize=4, color="#2b6cb0")
        ax.set_xticks(range(len(modes)), modes, fontsize=8)
        ax.set_title(_head(head, unit), fontsize=9)
        if key == "test_accuracy":
            ax.set_ylim(0, 1.05)
    if title:
        fig.suptitle(f"{title}: mean ± std over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
