"""``rocknet compare``: the three training modes over the same emulated air, side by side.

``rocknet compare --dataset GunPoint --nodes 20`` runs the testbed (coordinator + N node
processes) once per mode (docs/modes.md):

- ``rocknet``: the paper; series and partial logits on the air;
- ``private-labels``: the same plus the owner's ``g``, labels never leave their owner;
- ``data-parallel``: every device holds the whole model and floods its gradient each step.

Data-parallel replicas do not fit the device's RAM for realistic feature counts; the
comparison runs them with the budget lifted (:data:`LIFTED_RAM_BUDGET_BYTES`) and the table
says whether each mode fits ``--ram-budget``. Every number comes from the runs' summaries
(``summary.json``: the air's traffic counters, the nodes' RAM ledgers, the owners'
accuracy): bytes on air, rounds, slots, latency and energy are the training share
(:mod:`coordinator.engine.traffic`) divided by the training samples of the run.

Writes ``compare.csv``, ``compare.md``, ``compare.json`` and ``compare.png`` to ``--out``
(default ``runs/compare-<dataset>-<N>n-<time>``), each mode's run directory below it. With
``--seeds K`` every mode runs with seeds ``SEED..SEED+K-1`` (``OUT/<mode>/seed<S>``; the
tables above keep seed SEED's runs) and ``compare_seeds.{md,csv,png}`` give every column's
mean ± std per mode (:mod:`coordinator.tools.compare_seeds`). The runs go to the worker pool
(:mod:`coordinator.tools.run_pool`, ``--jobs``).
"""

from __future__ import annotations

import math

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from coordinator.tools.compare_seeds import aggregate_modes, write_seed_outputs
from coordinator.tools.run_failures import report_failure, run_failures
from coordinator.tools.run_pool import Task, processes_per_run, run_tasks
from coordinator.tools.seeds import add_seed_flags, seed_dir, seed_values

log = logging.getLogger("rocknet.compare")

MODES = ("rocknet", "private-labels", "data-parallel")
#: The RAM budget data-parallel runs get in a comparison (they are refused at 256 KiB).
LIFTED_RAM_BUDGET_BYTES = 1 << 30
DEFAULT_RAM_BUDGET_BYTES = 256 * 1024

#: Columns of the table: (key, header, unit).
COLUMNS = (
    ("mode", "mode", ""),
    ("bytes_on_air_per_sample", "bytes on air / sample", "B"),
    ("payload_bytes_per_sample", "payload / sample", "B"),
    ("rounds_per_sample", "rounds / sample", ""),
    ("slots_per_sample", "slots / sample", ""),
    ("latency_ms_per_sample", "latency / sample", "ms"),
    ("energy_mj_per_device_per_sample", "energy / device / sample", "mJ"),
    ("peak_ram_bytes", "peak RAM / device", "B"),
    ("fits_budget", "fits RAM budget", ""),
    ("test_accuracy", "test accuracy", ""),
    ("train_samples", "training samples", ""),
    ("rounds", "rounds (run)", ""),
    ("virtual_time_s", "virtual time", "s"),
    ("wall_time_s", "wall time", "s"),
)


@dataclass(frozen=True)
class CompareOptions:
    """One comparison: the run's arguments shared by every mode, and where to write."""

    dataset: str = "GunPoint"
    nodes: int = 20
    epochs: int | None = None
    num_features: int = 10_000
    batch_size: int | None = None
    protocol: str = "mixer"
    loss: float = 0.0
    seed: int = 0
    optimizer: str = "adam"
    data_dir: Path | None = None
    ram_budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES
    modes: tuple[str, ...] = MODES
    out_dir: Path = Path("runs/compare")
    deadline_s: float = 60.0
    seeds: int = 1  # repetitions: seeds seed .. seed + seeds - 1, OUT/<mode>/seed<S>
    jobs: int | None = None  # runs at once (None: as many as the cores hold)
    in_process: bool = False  # every device in the run's process (same model bit for bit)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``compare`` to the ``rocknet`` command's subparsers."""
    p = subparsers.add_parser(
        "compare", help="run rocknet, private-labels and data-parallel on one dataset: table + plot",
        description="Run the testbed once per training mode (rocknet, private-labels, "
                    "data-parallel) over the same emulated air and write one table (CSV, "
                    "Markdown, JSON) and a plot of the per-sample costs (docs/modes.md).",
    )
    p.add_argument("--dataset", default="GunPoint", help="UCR dataset (default %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None, help="UCR 2018 archive root")
    p.add_argument("--nodes", type=int, default=20, help="devices (default %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the model's)")
    p.add_argument("--num-features", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--protocol", choices=("mixer", "glossy"), default="mixer")
    p.add_argument("--loss", type=float, default=0.0, help="i.i.d. packet drop probability")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", choices=("adam", "adam8bit"), default="adam")
    p.add_argument("--ram-budget", type=int, default=DEFAULT_RAM_BUDGET_BYTES,
                   help="the device RAM the table checks against (data-parallel runs with it "
                        "lifted, or it would be refused)")
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma list of modes to run (default: all three)")
    p.add_argument("--deadline", type=float, default=60.0,
                   help="seconds a node has to answer an exchange")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default runs/compare-<dataset>-<N>n-<time>)")
    p.add_argument("--quiet", action="store_true", help="warnings only (no per-run log lines)")
    p.add_argument("--backend", choices=("processes", "inprocess"), default="processes",
                   help="processes: one OS process per device (default); inprocess: faster, same model")
    add_seed_flags(p)  # --seeds K: OUT/<mode>/seed<S>, compare_seeds.md/csv/png (mean ± std); --jobs J
    return p


def main(args: argparse.Namespace) -> int:
    """``rocknet compare``: run, tabulate, plot; 0 if every mode finished."""
    from coordinator.service.results import default_run_dir

    modes = tuple(m.strip() for m in str(args.modes).split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        print(f"rocknet: --modes takes a comma list of {', '.join(MODES)}; got {args.modes!r}",
              file=sys.stderr)
        return 2
    out = args.out or default_run_dir(args.dataset, args.nodes, kind="compare")
    options = CompareOptions(
        dataset=args.dataset, nodes=args.nodes, epochs=args.epochs, num_features=args.num_features,
        batch_size=args.batch_size, protocol=args.protocol, loss=args.loss, seed=args.seed,
        optimizer=args.optimizer, data_dir=args.data_dir, ram_budget_bytes=args.ram_budget,
        modes=modes, out_dir=out, deadline_s=args.deadline, seeds=args.seeds, jobs=args.jobs,
        in_process=args.backend == "inprocess",
    )
    try:
        rows = run_comparison(options)
    except run_failures() as exc:
        return report_failure(exc, "rocknet compare", f"runs under {out}")
    print(markdown_table(rows))
    if options.seeds > 1:
        print("\n" + (out / "compare_seeds.md").read_text())
    print(f"\ncomparison written to {out}/compare.{{csv,md,json,png}}")
    return 0 if all(r.get("phase") == "finished" for r in rows) else 1


def run_mode(args: Any, launch: Any) -> dict[str, Any]:
    """One mode's run (a pool task): its summary, or ``phase: failed`` if a node refused it."""
    from coordinator.service.launch import run_testbed
    from coordinator.service.server import RunAborted

    try:
        return run_testbed(args, launch)
    except RunAborted as exc:
        return {"phase": "failed", "error": str(exc)}


def mode_dir(options: CompareOptions, mode: str, seed: int) -> Path:
    """``OUT/<mode>`` (one seed) or ``OUT/<mode>/seed<S>`` (``--seeds K``)."""
    base = Path(options.out_dir) / mode
    return base if options.seeds == 1 else seed_dir(base, seed)


def run_comparison(options: CompareOptions) -> list[dict[str, Any]]:
    """Run every mode (and seed) of ``options`` in the worker pool; write the tables and plots.

    Returns the table rows of seed ``options.seed``'s runs, one per mode; with ``seeds > 1``
    ``compare_seeds.{md,csv,png}`` hold every column's mean ± std per mode.
    """
    from coordinator.service.launch import LaunchOptions
    from coordinator.service.run_setup import RunArgs
    from coordinator.service.server import CoordinatorOptions

    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds = seed_values(options.seed, options.seeds)
    tasks, keys = [], []
    for mode in options.modes:
        lifted = mode == "data-parallel" and options.ram_budget_bytes < LIFTED_RAM_BUDGET_BYTES
        for seed in seeds:
            args = RunArgs(
                dataset=options.dataset, nodes=options.nodes, epochs=options.epochs,
                protocol=options.protocol, loss=options.loss, seed=seed,
                data_dir=options.data_dir, batch_size=options.batch_size, optimizer=options.optimizer,
                num_features=options.num_features, mode=mode,
                head="sgd",  # the modes are compared on the paper's head (every mode has it)
                ram_budget_bytes=LIFTED_RAM_BUDGET_BYTES if lifted else options.ram_budget_bytes,
            )
            launch = LaunchOptions(
                out_dir=mode_dir(options, mode, seed),
                coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                               deadline_s=options.deadline_s, in_process=options.in_process),
                progress=False, reference=False,
            )
            tasks.append(Task(run_mode, (args, launch), label=f"{mode} seed {seed}",
                              processes=processes_per_run(options.nodes, options.in_process)))
            keys.append((mode, seed, lifted))
    log.info("compare: %d run(s) of %s with %d nodes", len(tasks), options.dataset, options.nodes)
    results = run_tasks(tasks, jobs=options.jobs)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in options.modes}
    for (mode, _seed, lifted), summary in zip(keys, results):
        summary["ram_budget_lifted"] = lifted
        runs[mode].append(summary)
    summaries = {mode: runs[mode][0] for mode in options.modes}
    rows = [table_row(mode, summaries[mode], options.ram_budget_bytes) for mode in options.modes]
    write_outputs(rows, summaries, options, out)
    if options.seeds > 1:
        per_mode = {m: [table_row(m, s, options.ram_budget_bytes) for s in runs[m]] for m in options.modes}
        write_seed_outputs(aggregate_modes(per_mode), options, out)
    return rows


def table_row(mode: str, summary: dict[str, Any], budget_bytes: int) -> dict[str, Any]:
    """One row of the table from a run's ``summary.json`` (None where the run has no value)."""
    per = summary.get("per_train_sample") or {}
    peak = summary.get("peak_ram_bytes")

    def scaled(key: str, factor: float = 1.0) -> float | None:
        value = per.get(key)
        return None if value is None else float(value) * factor

    return {
        "mode": mode,
        "phase": summary.get("phase"),
        "bytes_on_air_per_sample": scaled("bytes_on_air"),
        "payload_bytes_per_sample": scaled("payload_bytes"),
        "rounds_per_sample": scaled("rounds"),
        "slots_per_sample": scaled("slots"),
        "latency_ms_per_sample": scaled("latency_s", 1e3),
        "energy_mj_per_device_per_sample": scaled("energy_mj_per_device"),
        "peak_ram_bytes": peak,
        "fits_budget": None if peak is None else bool(peak <= budget_bytes),
        "test_accuracy": summary.get("test_accuracy"),
        "train_samples": summary.get("train_samples"),
        "rounds": summary.get("rounds"),
        "virtual_time_s": summary.get("virtual_time_s"),
        "wall_time_s": summary.get("wall_time_s"),
        "ram_budget_lifted": summary.get("ram_budget_lifted", False),
        "error": summary.get("error"),
    }


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key == "fits_budget":
        return "yes" if value else "no"
    if key in ("bytes_on_air_per_sample", "payload_bytes_per_sample", "peak_ram_bytes"):
        return fmt_bytes(float(value))
    if key == "test_accuracy":
        return f"{value:.3f}"
    if key in ("train_samples", "rounds"):
        return f"{int(value):,d}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The table in Markdown (units in the headers)."""
    heads = [f"{h} ({u})" if u and u != "B" else h for _, h, u in COLUMNS]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(k, row.get(k)) for k, _, _ in COLUMNS) + " |")
    return "\n".join(lines)


def write_outputs(rows: Sequence[dict[str, Any]], summaries: dict[str, dict[str, Any]],
                  options: CompareOptions, out: Path) -> None:
    """``compare.csv``, ``compare.md``, ``compare.json`` and ``compare.png`` in ``out``."""
    keys = [k for k, _, _ in COLUMNS] + ["phase", "ram_budget_lifted", "error"]
    with open(out / "compare.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in keys})
    lifted = [r["mode"] for r in rows if r.get("ram_budget_lifted")]
    note = (f"\n\n{', '.join(lifted)}: run with the RAM budget lifted to "
            f"{LIFTED_RAM_BUDGET_BYTES:,d} B (refused at {options.ram_budget_bytes:,d} B)." if lifted else "")
    header = (f"{options.dataset}, {options.nodes} nodes, {options.protocol}, "
              f"{options.num_features} target features, epochs {options.epochs or 'default'}, "
              f"loss {options.loss}. Per training sample: the training share of the run's air "
              f"(calibration and evaluation traffic excluded) divided by its training samples.")
    (out / "compare.md").write_text(header + "\n\n" + markdown_table(rows) + note + "\n")
    (out / "compare.json").write_text(json.dumps({
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in options.__dict__.items()},
        "rows": rows,
        "runs": {m: {k: v for k, v in s.items() if k != "per_node"} for m, s in summaries.items()},
    }, indent=2, default=str))
    plot(rows, out / "compare.png", title=f"{options.dataset}, {options.nodes} nodes",
         budget_bytes=options.ram_budget_bytes)


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str = "",
         budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES) -> None:
    """Bar charts of the per-sample costs, RAM and accuracy per mode (log scale for costs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("bytes_on_air_per_sample", "bytes on air / sample (B)", True),
        ("rounds_per_sample", "rounds / sample", True),
        ("slots_per_sample", "slots / sample", True),
        ("latency_ms_per_sample", "latency / sample (ms)", True),
        ("energy_mj_per_device_per_sample", "energy / device / sample (mJ)", True),
        ("peak_ram_bytes", "peak RAM / device (B)", True),
        ("test_accuracy", "test accuracy", False),
    ]
    modes = [r["mode"] for r in rows]
    colors = ["#2b6cb0", "#38a169", "#c53030", "#805ad5"][: len(modes)]
    fig, grid = plt.subplots(2, 4, figsize=(13, 6.4))
    axes = grid.ravel()
    for ax, (key, label, log_scale) in zip(axes, panels):
        values = [float(r[key]) if r.get(key) is not None else 0.0 for r in rows]
        bars = ax.bar(range(len(modes)), values, color=colors)
        ax.set_xticks(range(len(modes)), modes, fontsize=8)
        ax.set_title(label, fontsize=9)
        positive = [v for v in values if v > 0]
        if log_scale and positive:
            ax.set_yscale("log")
            ax.set_ylim(min(positive) / 3, max(positive) * 4)
        for bar, v in zip(bars, values):
            text = f"{v:.3f}" if key == "test_accuracy" else f"{v:,.3g}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        if key == "peak_ram_bytes":
            ax.axhline(budget_bytes, color="black", linestyle="--", linewidth=1)
            ax.text(-0.4, budget_bytes, f"budget {budget_bytes / 1024:g} KiB", fontsize=7, va="bottom")
        if key == "test_accuracy":
            ax.set_ylim(0, 1.05)
    for ax in axes[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(f"{title}: per training sample (log scale), RAM and accuracy", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt_bytes(n: float | None) -> str:
    """``1,234 B`` / ``12.3 KiB`` / ``4.56 MiB`` for tables."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    if n < 10 * 1024:
        return f"{n:,.0f} B"
    if n < 10 * 1024 * 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / 2**20:,.2f} MiB"
