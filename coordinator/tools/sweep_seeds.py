"""Repetitions over seeds (``rocknet sweep --seeds K``): mean and std per N of each measure.

Seed ``k`` of a sweep started with ``--seed S`` runs with seed ``S + k`` into
``runs/N<NN>/seed<S+k>`` (:mod:`coordinator.tools.seeds`, as ``run`` and ``compare`` do). The table
``sweep_seeds.md`` / ``sweep_seeds.csv`` has one row per N with ``mean`` and ``std`` (the
population standard deviation over the K seeds, ``ddof=0``) of every measure below.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from coordinator.tools.seeds import SeedStat, cell, stat
from coordinator.tools.sweep_point import SweepPoint

__all__ = ["MEASURES", "SeedRow", "SeedStat", "aggregate", "markdown", "plot_error_bars", "stat",
           "write_tables"]

#: (SweepPoint field, table header, unit) of the measures aggregated over seeds.
MEASURES = (
    ("test_accuracy", "test accuracy", ""),
    ("centralized_test_accuracy", "centralized accuracy", ""),
    ("train_round_latency_s", "train round", "s"),
    ("energy_per_train_sample_mj", "energy/sample", "mJ"),
    ("ram_kib", "RAM", "KiB"),
    ("virtual_time_s", "virtual time", "s"),
)


@dataclass(frozen=True)
class SeedRow:
    """One N of the seeds table: every measure of :data:`MEASURES` over its seeds."""

    nodes: int
    seeds: int
    stats: dict[str, SeedStat]


def aggregate(points: Sequence[SweepPoint]) -> SeedRow:
    """The seeds of one N (all ``points`` have the same ``nodes``)."""
    if not points or len({p.nodes for p in points}) != 1:
        raise ValueError("aggregate() takes the runs of exactly one N")
    return SeedRow(points[0].nodes, len(points),
                   {name: stat([getattr(p, name) for p in points]) for name, _, _ in MEASURES})


def markdown(rows: Sequence[SeedRow]) -> str:
    heads = [f"{h} ({u})" if u else h for _, h, u in MEASURES]
    lines = ["| N | seeds | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 2)]
    for r in rows:
        lines.append(f"| {r.nodes} | {r.seeds} | "
                     + " | ".join(cell(r.stats[name]) for name, _, _ in MEASURES) + " |")
    return "\n".join(lines)


def write_tables(rows: Sequence[SeedRow], out_dir: Path) -> list[Path]:
    """``sweep_seeds.md`` (mean ± std) and ``sweep_seeds.csv`` (``<measure>_mean/_std``)."""
    md = out_dir / "sweep_seeds.md"
    md.write_text("# Sweep over seeds (mean ± std over seeds)\n\n" + markdown(rows) + "\n")
    path = out_dir / "sweep_seeds.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["nodes", "seeds"] + [f"{n}_{k}" for n, _, _ in MEASURES for k in ("mean", "std")])
        for r in rows:
            w.writerow([r.nodes, r.seeds] + [v for n, _, _ in MEASURES
                                              for v in (r.stats[n].mean, r.stats[n].std)])
    return [md, path]


def plot_error_bars(rows: Sequence[SeedRow], out_dir: Path) -> list[Path]:
    """One PNG per measure: mean vs N with std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for name, head, unit in MEASURES:
        pts = [(r.nodes, s.mean, s.std) for r in rows
               if (s := r.stats[name]).mean is not None and s.std is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.errorbar([p[0] for p in pts], [float(p[1] or 0.0) for p in pts],
                    yerr=[float(p[2] or 0.0) for p in pts], marker="o", capsize=4)
        ax.set_xlabel("devices N")
        ax.set_ylabel(f"{head} ({unit})" if unit else head)
        ax.set_title(f"{head}: mean ± std over {rows[0].seeds} seeds")
        fig.tight_layout()
        path = out_dir / f"seeds_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out
