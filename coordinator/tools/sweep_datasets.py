"""``rocknet sweep --datasets A,B,C|all``: the per-N sweep of several datasets, side by side.

Every dataset gets its own sweep folder (``OUT/<dataset>/``, as ``rocknet sweep --dataset``
writes it); all their runs share one pool. Across datasets, for each measure of
:data:`~coordinator.tools.sweep_seeds.MEASURES` (accuracy, round latency in s, energy per
training sample in mJ, RAM in KiB, virtual time in s): one table (a row per dataset, a column
per N; ``mean ± std`` over the seeds with ``--seeds K``) in ``datasets.md``, the same numbers
in long form in ``datasets.csv``, and one plot ``datasets_<measure>.png`` (a line per
dataset against N, std error bars).

``all`` is every dataset bundled with aeon (:func:`coordinator.service.datasets.bundled_datasets`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from coordinator.tools.seeds import cell
from coordinator.tools.sweep_seeds import MEASURES, SeedRow


def parse_datasets(text: str) -> tuple[str, ...]:
    """``"A,B"`` -> ``("A", "B")``; ``"all"`` stays ``("all",)`` (resolved later)."""
    names = tuple(dict.fromkeys(x.strip() for x in str(text).split(",") if x.strip()))
    if not names:
        raise ValueError("--datasets needs at least one name (or all)")
    return names


parse_datasets.expects = 'a list of dataset names, or "all"'  # type: ignore[attr-defined]
parse_datasets.toml_types = (str, list)  # type: ignore[attr-defined]


def resolve_datasets(names: Sequence[str], data_dir: Path | None = None) -> tuple[str, ...]:
    """The datasets to sweep: ``all`` -> the bundled ones; every name checked to load.

    :class:`ValueError` naming every unknown dataset, the bundled ones and ``--data-dir``.
    """
    from coordinator.service.datasets import DatasetError, bundled_datasets, load_dataset

    bundled = bundled_datasets()
    wanted = [n for name in names for n in (bundled if name == "all" else [name])]
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        raise ValueError("--datasets all: no bundled dataset found (is aeon installed?); name "
                         "datasets of a UCR 2018 folder with --datasets A,B --data-dir DIR")
    unknown = []
    for name in wanted:
        try:
            load_dataset(name, data_dir)
        except DatasetError:
            unknown.append(name)
    if unknown:
        raise ValueError(
            f"unknown dataset(s) {', '.join(repr(u) for u in unknown)}; bundled datasets: "
            f"{', '.join(bundled) or 'none (aeon is not installed)'}; for others pass --data-dir DIR "
            "(UCR 2018 layout: DIR/<Name>/<Name>_TRAIN.tsv and _TEST.tsv)")
    return tuple(wanted)


def _unit(head: str, unit: str) -> str:
    return f"{head} ({unit})" if unit else head


def markdown(by_dataset: dict[str, Sequence[SeedRow]]) -> str:
    """One table per measure: a row per dataset, a column per N."""
    ns = sorted({r.nodes for rows in by_dataset.values() for r in rows})
    seeds = max((r.seeds for rows in by_dataset.values() for r in rows), default=1)
    parts = []
    for name, head, unit in MEASURES:
        lines = [f"## {_unit(head, unit)}" + (f", mean ± std over {seeds} seeds" if seeds > 1 else ""), "",
                 "| dataset | " + " | ".join(f"N={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
        for dataset, rows in by_dataset.items():
            at = {r.nodes: r.stats[name] for r in rows}
            cells = [("–" if n not in at else cell(at[n]) if seeds > 1 else
                      ("–" if at[n].mean is None else f"{at[n].mean:.4g}")) for n in ns]
            lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def write_outputs(by_dataset: dict[str, Sequence[SeedRow]], out: Path) -> list[Path]:
    """``datasets.md``, ``datasets.csv`` and one ``datasets_<measure>.png`` per measure."""
    out.mkdir(parents=True, exist_ok=True)
    md = out / "datasets.md"
    md.write_text(f"# Sweep across datasets: {', '.join(by_dataset)}\n\n" + markdown(by_dataset) + "\n")
    path = out / "datasets.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "nodes", "seeds"] + [f"{n}_{k}" for n, _, _ in MEASURES for k in ("mean", "std")])
        for dataset, rows in by_dataset.items():
            for r in rows:
                w.writerow([dataset, r.nodes, r.seeds] + [v for n, _, _ in MEASURES
                                                          for v in (r.stats[n].mean, r.stats[n].std)])
    return [md, path] + plot(by_dataset, out)


def plot(by_dataset: dict[str, Sequence[SeedRow]], out: Path) -> list[Path]:
    """One PNG per measure: a line per dataset against N, std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for name, head, unit in MEASURES:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for dataset, rows in by_dataset.items():
            pts = [(r.nodes, float(m), r.stats[name].std or 0.0) for r in rows
                   if (m := r.stats[name].mean) is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                            marker="o", capsize=3, label=dataset)
                drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xlabel("devices N")
        ax.set_ylabel(_unit(head, unit))
        ax.set_title(f"{head} across datasets")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"datasets_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files
