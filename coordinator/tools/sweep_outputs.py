"""What ``rocknet sweep`` writes: ``sweep.csv``, ``sweep.md`` and the PNGs against N."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from coordinator.tools.sweep_point import COLUMNS, SweepOptions, SweepPoint


def fmt_number(x: Any, digits: int) -> str:
    """``x`` with ``digits`` decimals, or ``n/a``."""
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_ms(x: Any) -> str:
    """Seconds ``x`` as milliseconds with one decimal, or ``n/a``."""
    return "n/a" if x is None else f"{1e3 * x:.1f}"


def gaps(values: Iterable[float | None]) -> list[float]:
    """Values to plot, a missing one as NaN (matplotlib leaves a gap)."""
    return [math.nan if v is None else float(v) for v in values]


def reduction(first: float | None, last: float | None) -> float | None:
    """Percent reduction from ``first`` to ``last`` (positive: smaller)."""
    if first is None or last is None or first == 0:
        return None
    return 100.0 * (first - last) / first


def write_csv(rows: Sequence[SweepPoint], path: Path) -> Path:
    """``sweep.csv``: one line per N, the :data:`~coordinator.tools.sweep_point.COLUMNS`."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_dict())
    return path


def ram_cell(row: SweepPoint) -> str:
    """The RAM column: KiB, and "does not fit" where the ledger exceeds the budget."""
    text = f"{row.ram_kib:.1f}"
    if not row.fits:
        text += f" (does not fit {row.ram_budget_bytes / 1024:.0f} KiB)"
    return text


def markdown_table(rows: Sequence[SweepPoint]) -> str:
    """The sweep table (one row per N) and the reduction from the smallest to the largest N."""
    head = ("| N | kernels / device | features / device | RAM / device (KiB) | latency / round (ms): "
            "compute + comm | energy / training sample / device (mJ), mean (max) | of which CPU, largest "
            "device (mJ) | test accuracy |")
    lines = [head, "|---:|---:|---:|---|---|---|---:|---:|"]
    for r in rows:
        lat = (f"{fmt_ms(r.train_round_latency_s)} = {fmt_ms(r.train_round_compute_s)} + "
               f"{fmt_ms(r.train_round_comm_s)}")
        energy = f"{fmt_number(r.energy_per_train_sample_mj, 3)} ({fmt_number(r.energy_per_train_sample_mj_max, 3)})"
        lines.append(f"| {r.nodes} | {r.kernels_per_device} | {r.features_per_device} | {ram_cell(r)} "
                     f"| {lat} | {energy} | {fmt_number(r.cpu_energy_per_train_sample_mj, 3)} "
                     f"| {fmt_number(r.test_accuracy, 4)} |")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        red = [reduction(a.ram_bytes, b.ram_bytes),
               reduction(a.train_round_latency_s, b.train_round_latency_s),
               reduction(a.energy_per_train_sample_mj, b.energy_per_train_sample_mj),
               reduction(a.cpu_energy_per_train_sample_mj, b.cpu_energy_per_train_sample_mj)]
        cells = ["n/a" if x is None else f"{x:.1f} %" for x in red]
        lines.append(f"| reduction N={a.nodes} → N={b.nodes} | | | {cells[0]} | {cells[1]} | {cells[2]} "
                     f"| {cells[3]} | |")
    return "\n".join(lines)


def baseline_line(baseline: dict[str, Any]) -> str:
    """One sentence on the NN baseline's accuracy, RAM, latency and energy."""
    t = baseline["timing"]
    return (f"On-device NN baseline (tanh MLP {'-'.join(map(str, baseline['widths']))}, Adam, "
            f"{baseline['config']['epochs']} epochs, one device): test accuracy "
            f"{baseline['test_accuracy']:.4f}, RAM {baseline['ram']['total_bytes'] / 1024:.1f} KiB, "
            f"{1e3 * t['train_sample_s']:.3f} ms and {t['train_sample_mj']:.4f} mJ per training sample "
            f"(compute only, no radio), {t['training_total_s']:.1f} s to train.")


def write_markdown(rows: Sequence[SweepPoint], path: Path, pngs: list[Path],
                   baseline: dict[str, Any] | None, opts: SweepOptions) -> Path:
    r0 = rows[0]
    lines = [
        f"# Sweep: {r0.dataset}, N = {', '.join(str(r.nodes) for r in rows)}",
        "",
        f"{r0.features_total} features, optimizer {r0.optimizer}, {r0.epochs} epochs, "
        f"protocol {opts.protocol}, seed {opts.seed}. RAM is the largest device's ledger (device 0); "
        f"every run had its budget lifted so that configurations that do not fit "
        f"{opts.ram_budget_bytes / 1024:.0f} KiB were measured too. Latency and energy are the means "
        "over the training rounds (lockstep run: one round carries one training sample).",
        "",
        markdown_table(rows),
        "",
    ]
    misfits = [r.nodes for r in rows if not r.fits]
    if misfits:
        lines += [f"N = {', '.join(map(str, misfits))}: the largest device's ledger exceeds the "
                  f"{opts.ram_budget_bytes / 1024:.0f} KiB of RAM, so a real device would refuse the "
                  "configuration (`rocknet run` does); the accuracy, latency and energy shown are what "
                  "it would give with enough RAM.", ""]
    if baseline is not None:
        lines += [baseline_line(baseline), ""]
    for png in pngs:
        lines.append(f"![{png.stem}]({png.name})")
    lines.append("")
    path.write_text("\n".join(lines))
    return path


def plot_sweep(rows: Sequence[SweepPoint], out_dir: Path, baseline: dict[str, Any] | None = None) -> list[Path]:
    """PNG plots against N: RAM (with the budget), latency, energy, accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r.nodes for r in rows]
    name = rows[0].dataset
    files = []

    def finish(fig: Any, ax: Any, filename: str, ylabel: str, title: str) -> None:
        ax.set_xlabel("devices N")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name}: {title}")
        ax.set_xticks(ns)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=120)
        plt.close(fig)
        files.append(out_dir / filename)

    fig, ax = plt.subplots(figsize=(6, 4))
    kib = [r.ram_kib for r in rows]
    ax.plot(ns, kib, "o-", label="RockNet, per device (ledger)")
    bad = [(n, k) for n, k, r in zip(ns, kib, rows) if not r.fits]
    if bad:
        ax.plot([b[0] for b in bad], [b[1] for b in bad], "rx", markersize=10, label="does not fit")
    budget = rows[0].ram_budget_bytes / 1024
    ax.axhline(budget, color="r", ls="--", lw=1, label=f"budget {budget:.0f} KiB")
    if baseline is not None:
        ax.axhline(baseline["ram"]["total_bytes"] / 1024, color="gray", ls=":", label="NN baseline (1 device)")
    ax.set_ylim(bottom=0)
    finish(fig, ax, "sweep_ram.png", "RAM per device (KiB)", "RAM per device")

    fig, ax = plt.subplots(figsize=(6, 4))
    comp = [1e3 * (r.train_round_compute_s or 0) for r in rows]
    comm = [1e3 * (r.train_round_comm_s or 0) for r in rows]
    ax.bar(range(len(ns)), comp, label="compute")
    ax.bar(range(len(ns)), comm, bottom=comp, label="communication")
    if baseline is not None:
        ax.axhline(1e3 * baseline["timing"]["train_sample_s"], color="gray", ls=":",
                   label="NN baseline, per training sample")
    ax.set_xticks(range(len(ns)), [str(n) for n in ns])
    ax.set_xlabel("devices N")
    ax.set_ylabel("latency per training round (ms)")
    ax.set_title(f"{name}: latency per round")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "sweep_latency.png", dpi=120)
    plt.close(fig)
    files.append(out_dir / "sweep_latency.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, gaps(r.energy_per_train_sample_mj for r in rows), "o-", label="mean over devices")
    ax.plot(ns, gaps(r.energy_per_train_sample_mj_max for r in rows), "s--", alpha=0.7, label="most-consuming device")
    ax.plot(ns, gaps(r.cpu_energy_per_train_sample_mj for r in rows), "^:", label="of which CPU (largest device)")
    if baseline is not None:
        ax.axhline(baseline["timing"]["train_sample_mj"], color="gray", ls=":", label="NN baseline (CPU only)")
    ax.set_ylim(bottom=0)
    finish(fig, ax, "sweep_energy.png", "energy per training sample (mJ)", "energy per training sample per device")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, gaps(r.test_accuracy for r in rows), "o-", label="RockNet (testbed)")
    if any(r.centralized_test_accuracy is not None for r in rows):
        ax.plot(ns, gaps(r.centralized_test_accuracy for r in rows), "k+", label="centralized reference")
    if baseline is not None:
        ax.axhline(baseline["test_accuracy"], color="gray", ls=":", label="NN baseline")
    ax.set_ylim(0, 1.02)
    finish(fig, ax, "sweep_accuracy.png", "test accuracy", "accuracy")
    return files
