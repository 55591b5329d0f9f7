"""``rocknet sweep``: the testbed for several N, as the paper's per-device figures.

For each N the sweep runs the real testbed (:func:`coordinator.service.launch.run_testbed`: the
coordinator and N node processes) into ``OUT/runs/N<NN>/`` and reads back what the run
directory holds:

* **RAM per device**: the largest device's ledger bytes (device 0: the most kernels and the
  bias ``b``) as its node reports them (``summary.json`` ``per_node[].ram_bytes``: the
  node's :mod:`node.mcu.memory` ledger). Every run is started with the budget *lifted*
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from coordinator.tools.nn_baseline_runner import nn_baseline_for_dataset
from coordinator.tools.run_dir import read_run
from coordinator.tools.sweep_seeds import aggregate, plot_error_bars, write_tables
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

    rows: tuple[SweepPoint, ...]  # one per N, in increasing N
    baseline: dict[str, Any] | None  # the NN baseline's result (``baseline.json``), if trained
    files: tuple[Path, ...]  # every file written under the sweep's folder


def run_sweep(opts: SweepOptions, echo: Callable[[str], None] | None = None) -> SweepResult:
    """Run every N, write the table and the plots (``echo``: progress lines)."""
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    seed_rows = []
    for n in sorted(opts.nodes):
        if echo:
            echo(f"N={n}: running {n} node process(es) on {opts.dataset} ...")
        if opts.seeds == 1:
            row = run_point(opts, n, out / "runs" / f"N{n:02d}")
        else:  # seed S + k into runs/NXX/seedK; the main table keeps seed S's run
            repeats = [run_point(replace(opts, seed=opts.seed + k), n,
                                 out / "runs" / f"N{n:02d}" / f"seed{k}") for k in range(opts.seeds)]
            seed_rows.append(aggregate(repeats))
            row = repeats[0]
        rows.append(row)
        if echo:
            echo(f"N={n}: RAM {row.ram_kib:.1f} KiB{'' if row.fits else ' (does not fit)'}, "
                 f"round {fmt_ms(row.train_round_latency_s)} ms, "
                 f"energy/sample {fmt_number(row.energy_per_train_sample_mj, 3)} mJ, "
                 f"accuracy {fmt_number(row.test_accuracy, 4)}")
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
    if seed_rows:
        files += write_tables(seed_rows, out) + plot_error_bars(seed_rows, out)
    (out / "sweep.json").write_text(json.dumps(
        {"options": _plain_options(opts), "rows": [r.as_dict() for r in rows]}, indent=2))
    return SweepResult(tuple(rows), baseline, tuple(files))


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
    p.add_argument("--dataset", default="GunPoint", help="UCR dataset (default %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None, help="UCR 2018 archive root")
    p.add_argument("--nodes", type=parse_nodes, default=DEFAULT_NODES,
                   help="comma list of N (default 1,2,5,10,15,20)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the model's)")
    p.add_argument("--optimizer", choices=("adam", "adam8bit"), default="adam")
    p.add_argument("--num-features", type=int, default=10_000)
    p.add_argument("--protocol", choices=("mixer", "glossy"), default="mixer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ram-budget", type=int, default=DEFAULT_RAM_BUDGET_BYTES,
                   help="device RAM in bytes the table checks against (default 262144 = 256 KiB)")
    p.add_argument("--reference", action="store_true", help="also train the centralized reference per N")
    p.add_argument("--no-baseline", action="store_true", help="skip the on-device NN baseline")
    p.add_argument("--nn-epochs", type=int, default=None, help="NN baseline epochs (default 1000)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse finished runs under OUT/runs made with the same arguments")
    p.add_argument("--out", type=Path, default=None, help="output folder (default sweeps/<dataset>)")
    p.add_argument("--seeds", type=int, default=1,
                   help="repetitions per N with seeds SEED..SEED+K-1: sweep_seeds.md/csv, mean ± std")
    p.add_argument("--backend", choices=("processes", "inprocess"), default="processes",
                   help="processes: one OS process per device (default); inprocess: faster, same model")


def main(args: argparse.Namespace) -> int:
    """Run ``rocknet sweep``; 0 on success, 2 for a bad argument, 3 when a run failed."""
    from coordinator.service.run_setup import SetupError
    from coordinator.service.server import RunAborted

    logging.getLogger("rocknet").setLevel(logging.WARNING)
    try:
        opts = SweepOptions(
            dataset=args.dataset, out_dir=args.out or Path("sweeps") / args.dataset, nodes=tuple(args.nodes),
            epochs=args.epochs, optimizer=args.optimizer, num_features=args.num_features,
            protocol=args.protocol, seed=args.seed, data_dir=args.data_dir, ram_budget_bytes=args.ram_budget,
            reference=args.reference, baseline=not args.no_baseline, nn_epochs=args.nn_epochs, reuse=args.reuse,
            seeds=args.seeds, in_process=args.backend == "inprocess",
        )
        result = run_sweep(opts, echo=lambda s: print(s, flush=True))
    except (ValueError, SetupError) as exc:
        print(f"rocknet sweep: {exc}", file=sys.stderr)
        return 2
    except RunAborted as exc:
        print(f"rocknet sweep: a run was aborted: {exc}", file=sys.stderr)
        return 3
    print()
    print(markdown_table(result.rows))
    seeds_md = Path(opts.out_dir) / "sweep_seeds.md"
    if opts.seeds > 1 and seeds_md.exists():
        print("\n" + seeds_md.read_text())
    if result.baseline is not None:
        print(baseline_line(result.baseline))
    print(f"\nwritten: {', '.join(str(f) for f in result.files)}")
    return 0 if all(r.phase == "finished" for r in result.rows) else 3


def _standalone(argv: list[str] | None = None) -> int:
    from coordinator.ui.subcommand import run_standalone

    return run_standalone("sweep", add_parser, main, argv)


__all__ = ["COLUMNS", "LIFTED_BUDGET_BYTES", "SweepOptions", "SweepPoint", "SweepResult", "add_parser",
           "analyze_run", "main", "markdown_table", "plot_sweep", "read_run", "run_point", "run_sweep",
           "train_sample_energy_mj"]

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(_standalone())
