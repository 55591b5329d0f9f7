"""``rocknet sweep``: the testbed for several N, as the paper's per-device figures.

For each N the sweep runs the real testbed (:func:`coordinator.service.launch.run_testbed`: the
coordinator and N node processes) into ``OUT/runs/N<NN>/`` and reads back what the run
directory holds:

* **RAM per device**: the largest device's ledger bytes (device 0: the most kernels and the
  bias ``b``) as its node reports them (``summary.json`` ``per_node[].ram_bytes``: the
  node's :mod:`protocol.config.ram_ledger` ledger). Every run is started with the budget *lifted*
  (:data:`LIFTED_BUDGET_BYTES`) so that a configuration that does not fit the device (N=1
  with 10k features and float32 Adam) is still measured; the ``fits`` column compares the
  ledger with the real budget (``--ram-budget``, default 256 KiB) exactly as the node's own
  check does, and the table says "does not fit" where it fails, as the paper does.
* **Latency per round** = compute window + slots x slot length, from the round records
  (``latency_s``, ``slots``, ``slot_s``) of the training rounds, and the run's
  ``virtual_time_s / rounds``.
* **Energy per training sample per device**: the runs are lockstep (one exchange per radio
  round, bitwise the same training as batch mode), so each round record carries every
  device's cumulative energy right after that round; the per-device increments over the
  training rounds, averaged, are the energy of one training sample (one round carries one
  sample's series and the previous sample's partial logits). Reported as the mean over
  devices and the largest device.
* **Accuracy**: the test accuracy as the initiator sees it.

Outputs: ``sweep.csv``, ``sweep.md`` (table + reductions from the smallest to the largest N)
and PNGs against N (``sweep_ram.png``, ``sweep_latency.png``, ``sweep_energy.png``,
``sweep_accuracy.png``). With ``--baseline`` (default) the on-device NN baseline
(:mod:`coordinator.tools.baseline`) is trained on the same data and drawn as a reference line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from coordinator.tools.nn_baseline_runner import nn_baseline_for_dataset
from coordinator.tools.run_dir import read_run
from coordinator.tools.run_failures import report_failure, run_failures
from coordinator.tools.run_pool import Task, concurrent_runs, processes_per_run, run_tasks
from coordinator.tools.seeds import add_seed_flags, seed_dir, seed_values
from coordinator.tools.sweep_datasets import parse_datasets, resolve_datasets
from coordinator.tools.sweep_datasets import write_outputs as write_datasets
from coordinator.tools.sweep_seeds import SeedRow, aggregate, plot_error_bars, write_tables
from coordinator.tools.sweep_outputs import (
    baseline_line,
    fmt_ms,
    fmt_number,
    markdown_table,
    plot_sweep,
    write_csv,
    write_markdown,
)
from coordinator.tools.sweep_point import (
    COLUMNS,
    DEFAULT_NODES,
    LIFTED_BUDGET_BYTES,
    SweepOptions,
    SweepPoint,
    analyze_run,
    run_point,
    train_sample_energy_mj,
)
from protocol.config.run import DEFAULT_RAM_BUDGET_BYTES

log = logging.getLogger("rocknet.sweep")


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` measured and wrote."""

    rows: tuple[SweepPoint, ...]  # one per N, in increasing N (seed SEED's run)
    baseline: dict[str, Any] | None  # the NN baseline's result (``baseline.json``), if trained
    files: tuple[Path, ...]  # every file written under the sweep's folder
    seed_rows: tuple[SeedRow, ...] = ()  # one per N: every measure over the seeds (K = 1 too)


def point_dir(opts: SweepOptions, n: int, seed: int) -> Path:
    """``runs/N<NN>`` (one seed) or ``runs/N<NN>/seed<S>`` (``--seeds K``)."""
    base = Path(opts.out_dir) / "runs" / f"N{n:02d}"
    return base if opts.seeds == 1 else seed_dir(base, seed)


def sweep_tasks(opts: SweepOptions) -> list[Task[SweepPoint]]:
    """One pool task per N and seed, in increasing N then seed."""
    return [Task(run_point, (replace(opts, seed=s), n, point_dir(opts, n, s)),
                 processes=processes_per_run(n, opts.in_process), label=f"{opts.dataset} N={n} seed {s}")
            for n in sorted(opts.nodes) for s in seed_values(opts.seed, opts.seeds)]


def run_sweeps(sweeps: Sequence[SweepOptions], jobs: int | None = None,
               echo: Callable[[str], None] | None = None) -> list[SweepResult]:
    """Every run of every sweep in one pool (:mod:`coordinator.tools.run_pool`), then each
    sweep's tables and plots; ``jobs``: runs at once (None: as the cores allow)."""
    per_sweep = [sweep_tasks(o) for o in sweeps]
    tasks = [t for ts in per_sweep for t in ts]

    def done(i: int, p: SweepPoint) -> None:
        if echo:
            echo(f"{tasks[i].label}: RAM {p.ram_kib:.1f} KiB{'' if p.fits else ' (does not fit)'}, "
                 f"round {fmt_ms(p.train_round_latency_s)} ms, "
                 f"energy/sample {fmt_number(p.energy_per_train_sample_mj, 3)} mJ, "
                 f"accuracy {fmt_number(p.test_accuracy, 4)}")

    if echo:
        echo(f"{len(tasks)} run(s), up to {concurrent_runs([t.processes for t in tasks], jobs)} at once ...")
    points = run_tasks(tasks, jobs=jobs, on_done=done)
    results, k = [], 0
    for opts, ts in zip(sweeps, per_sweep):
        mine, k = points[k:k + len(ts)], k + len(ts)
        by_n = [list(mine[i:i + opts.seeds]) for i in range(0, len(mine), opts.seeds)]
        results.append(write_sweep(opts, by_n, echo))
    return results


def run_sweep(opts: SweepOptions, echo: Callable[[str], None] | None = None,
              jobs: int | None = None) -> SweepResult:
    """Run every N (and seed), write the table and the plots (``echo``: progress lines)."""
    return run_sweeps([opts], jobs, echo)[0]


def write_sweep(opts: SweepOptions, by_n: Sequence[Sequence[SweepPoint]],
                echo: Callable[[str], None] | None = None) -> SweepResult:
    """The sweep's files from its points (``by_n``: per N, in increasing N, one per seed)."""
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [repeats[0] for repeats in by_n]  # the main table keeps seed SEED's run
    seed_rows = [aggregate(repeats) for repeats in by_n]
    baseline = None
    if opts.baseline:
        if echo:
            echo(f"training the on-device NN baseline on {opts.dataset} ...")
        baseline = nn_baseline_for_dataset(opts.dataset, data_dir=opts.data_dir, epochs=opts.nn_epochs,
                                           seed=opts.seed)
        (out / "baseline.json").write_text(json.dumps(baseline, indent=2))
    files = [write_csv(rows, out / "sweep.csv")]
    pngs = plot_sweep(rows, out, baseline)
    files.append(write_markdown(rows, out / "sweep.md", pngs, baseline, opts))
    files += pngs
    if opts.seeds > 1:
        files += write_tables(seed_rows, out) + plot_error_bars(seed_rows, out)
    (out / "sweep.json").write_text(json.dumps(
        {"options": _plain_options(opts), "rows": [r.as_dict() for r in rows]}, indent=2))
    return SweepResult(tuple(rows), baseline, tuple(files), tuple(seed_rows))


def _plain_options(opts: SweepOptions) -> dict[str, Any]:
    d = asdict(opts)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}



# ----------------------------------------------------------------------------- CLI


def parse_nodes(text: str) -> tuple[int, ...]:
    """``"1,2,5"`` -> ``(1, 2, 5)``; a clear error otherwise."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--nodes is a comma list of integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("--nodes needs at least one N")
    return values


def add_parser(subparsers: Any) -> None:
    """Add ``sweep`` to the ``rocknet`` command's subparsers."""
    p = subparsers.add_parser("sweep", help="run the testbed for several N: RAM, latency, energy, accuracy vs N",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=None, help="UCR dataset (default GunPoint)")
    p.add_argument("--datasets", type=parse_datasets, default=None,
                   help="comma list of datasets, or all (every bundled one): one sweep each in "
                        "OUT/<dataset>/, datasets.md/csv and a plot per measure across them")
    p.add_argument("--data-dir", type=Path, default=None, help="UCR 2018 archive root")
    p.add_argument("--nodes", type=parse_nodes, default=DEFAULT_NODES,
                   help="comma list of N (default 1,2,5,10,15,20)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the model's)")
    p.add_argument("--optimizer", choices=("adam", "adam8bit"), default="adam")
    p.add_argument("--num-features", type=int, default=10_000)
    p.add_argument("--protocol", choices=("mixer", "mixer-coordinated", "glossy"), default="mixer")
    p.add_argument("--profile", choices=("tuned", "firmware"), default="tuned",
                   help="device profile (docs/fidelity.md): tuned (ours) or firmware (the official code)")
    p.add_argument("--recipe", choices=("tuned", "paper"), default="tuned",
                   help="training recipe: tuned (ours) or paper (the firmware's settings)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ram-budget", type=int, default=DEFAULT_RAM_BUDGET_BYTES,
                   help="device RAM in bytes the table checks against (default 262144 = 256 KiB)")
    p.add_argument("--reference", action="store_true", help="also train the centralized reference per N")
    p.add_argument("--no-baseline", action="store_true", help="skip the on-device NN baseline")
    p.add_argument("--nn-epochs", type=int, default=None, help="NN baseline epochs (default 1000)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse finished runs under OUT/runs made with the same arguments")
    p.add_argument("--out", type=Path, default=None, help="output folder (default sweeps/<dataset>)")
    p.add_argument("--backend", choices=("processes", "inprocess"), default="processes",
                   help="processes: one OS process per device (default); inprocess: faster, same model")
    add_seed_flags(p)  # --seeds K: runs/NXX/seed<S>, sweep_seeds.md/csv; --jobs J


def main(args: argparse.Namespace) -> int:
    """Run ``rocknet sweep``; 0 on success, 2 for a bad argument, 3 when a run failed."""

    logging.getLogger("rocknet").setLevel(logging.WARNING)
    echo = lambda s: print(s, flush=True)  # noqa: E731
    try:
        if args.dataset is not None and args.datasets is not None:
            raise ValueError("give --dataset D or --datasets A,B,C, not both")
        names = resolve_datasets(args.datasets, args.data_dir) if args.datasets else None
        base = args.out or Path("sweeps") / (args.dataset or "GunPoint" if names is None else "datasets")
        sweeps = [_options(args, d, base / d if names else base) for d in (names or [args.dataset or "GunPoint"])]
        results = run_sweeps(sweeps, jobs=args.jobs, echo=echo)
    except run_failures(value_errors=True) as exc:
        return report_failure(exc, "rocknet sweep", lambda: f"runs under {base}")
    for opts, result in zip(sweeps, results):
        print(f"\n{opts.dataset}:\n" + markdown_table(result.rows))
        seeds_md = Path(opts.out_dir) / "sweep_seeds.md"
        if opts.seeds > 1 and seeds_md.exists():
            print("\n" + seeds_md.read_text())
        if result.baseline is not None:
            print(baseline_line(result.baseline))
        print(f"\nwritten: {', '.join(str(f) for f in result.files)}")
    if names:
        files = write_datasets({o.dataset: r.seed_rows for o, r in zip(sweeps, results)}, base)
        print("\n" + (base / "datasets.md").read_text())
        print(f"written: {', '.join(str(f) for f in files)}")
    return 0 if all(r.phase == "finished" for res in results for r in res.rows) else 3


def _options(args: argparse.Namespace, dataset: str, out: Path) -> SweepOptions:
    return SweepOptions(
        dataset=dataset, out_dir=out, nodes=tuple(args.nodes),
        epochs=args.epochs, optimizer=args.optimizer, num_features=args.num_features,
        protocol=args.protocol, seed=args.seed, data_dir=args.data_dir, ram_budget_bytes=args.ram_budget,
        reference=args.reference, baseline=not args.no_baseline, nn_epochs=args.nn_epochs, reuse=args.reuse,
        seeds=args.seeds, in_process=args.backend == "inprocess",
        profile=args.profile, recipe=args.recipe,
    )


def _standalone(argv: list[str] | None = None) -> int:
    from coordinator.ui.subcommand import run_standalone

    return run_standalone("sweep", add_parser, main, argv)


__all__ = ["COLUMNS", "LIFTED_BUDGET_BYTES", "SweepOptions", "SweepPoint", "SweepResult", "add_parser",
           "analyze_run", "main", "markdown_table", "plot_sweep", "read_run", "run_point", "run_sweep",
           "train_sample_energy_mj"]

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(_standalone())
