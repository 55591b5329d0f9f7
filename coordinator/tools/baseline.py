"""The on-device NN baseline next to RockNet: ``rocknet baseline``.

The baseline itself (a tanh MLP trained on one device) lives in :mod:`node.offline.nn_baseline`;
:mod:`coordinator.tools.nn_baseline_runner` trains it in a subprocess on the devices' int8 data.

``rocknet baseline --dataset GunPoint,ItalyPowerDemand,OSULeaf`` trains the baseline and runs
the RockNet testbed at ``--nodes`` devices (default 20) on each dataset, and writes
``baseline.csv``, ``baseline.md``, ``baseline.json`` and ``baseline_accuracy.png`` into OUT
(default ``sweeps/``). The RockNet runs go where ``rocknet sweep`` puts them
(``OUT/<dataset>/runs/N<NN>``), so with ``--reuse`` a finished sweep's run is not repeated.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.tools.nn_baseline_runner import (
    BaselineError,
    nn_baseline_for_dataset,
    run_nn_baseline,
)
from coordinator.tools.sweep_point import SweepOptions, SweepPoint, run_point

log = logging.getLogger("rocknet.baseline")

DEFAULT_DATASETS = ("GunPoint", "ItalyPowerDemand", "OSULeaf")


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class ComparisonRow:
    """One dataset: the NN baseline (one device, modeled CPU only) next to RockNet (the
    testbed's per-device means over training rounds). The ``rocknet_*`` fields are None when
    RockNet was not run (``--no-rocknet``)."""

    dataset: str
    nn_test_accuracy: float
    nn_test_accuracy_best_epoch: float | None
    nn_epochs: int
    nn_ram_bytes: int
    nn_train_sample_s: float
    nn_train_sample_mj: float
    nn_training_total_s: float
    nn_training_total_mj: float
    rocknet_nodes: int | None = None
    rocknet_epochs: int | None = None
    rocknet_test_accuracy: float | None = None
    rocknet_ram_bytes: int | None = None
    rocknet_round_s: float | None = None  # one training round, s
    rocknet_train_sample_mj: float | None = None  # per device
    rocknet_training_s: float | None = None  # the sum of its training rounds
    accuracy_ratio: float | None = None  # RockNet / NN

    def as_dict(self) -> dict[str, Any]:
        """The row as ``baseline.csv`` holds it: without the RockNet columns if it did not run."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.rocknet_nodes is None:
            out = {k: v for k, v in out.items() if not k.startswith("rocknet_") and k != "accuracy_ratio"}
        return out


def comparison_row(nn: dict[str, Any], rock: SweepPoint | None) -> ComparisonRow:
    """One dataset from the baseline's result JSON and RockNet's sweep point (if it ran)."""
    t = nn["timing"]
    row = ComparisonRow(
        dataset=nn["dataset"],
        nn_test_accuracy=nn["test_accuracy"],
        nn_test_accuracy_best_epoch=nn.get("test_accuracy_best_epoch"),
        nn_epochs=nn["config"]["epochs"],
        nn_ram_bytes=nn["ram"]["total_bytes"],
        nn_train_sample_s=t["train_sample_s"],
        nn_train_sample_mj=t["train_sample_mj"],
        nn_training_total_s=t["training_total_s"],
        nn_training_total_mj=t["training_total_mj"],
    )
    if rock is None:
        return row
    return replace(
        row,
        rocknet_nodes=rock.nodes,
        rocknet_epochs=rock.epochs,
        rocknet_test_accuracy=rock.test_accuracy,
        rocknet_ram_bytes=rock.ram_bytes,
        rocknet_round_s=rock.train_round_latency_s,
        rocknet_train_sample_mj=rock.energy_per_train_sample_mj,
        rocknet_training_s=(rock.train_round_latency_s or 0.0) * rock.train_rounds,
        accuracy_ratio=(rock.test_accuracy / nn["test_accuracy"]
                        if rock.test_accuracy and nn["test_accuracy"] else None),
    )


def comparison_markdown(rows: Sequence[ComparisonRow]) -> str:
    """The comparison table: accuracy, RAM, latency and energy per training sample."""
    def f(x: Any, d: int, scale: float = 1.0) -> str:
        return "n/a" if x is None else f"{x * scale:.{d}f}"

    lines = [
        "| dataset | accuracy NN | accuracy RockNet | ratio | RAM NN (KiB) | RAM RockNet / device (KiB) "
        "| latency / training sample NN (ms) | RockNet round (ms) | energy / training sample NN (mJ) "
        "| RockNet / device (mJ) | training time NN (s) | RockNet (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.dataset} | {f(r.nn_test_accuracy, 3)} | {f(r.rocknet_test_accuracy, 3)} "
            f"| {f(r.accuracy_ratio, 2)}× | {f(r.nn_ram_bytes, 1, 1 / 1024)} "
            f"| {f(r.rocknet_ram_bytes, 1, 1 / 1024)} | {f(r.nn_train_sample_s, 2, 1e3)} "
            f"| {f(r.rocknet_round_s, 1, 1e3)} | {f(r.nn_train_sample_mj, 4)} "
            f"| {f(r.rocknet_train_sample_mj, 3)} | {f(r.nn_training_total_s, 1)} "
            f"| {f(r.rocknet_training_s, 1)} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class ComparisonResult:
    """What :func:`run_comparison` measured and wrote."""

    rows: tuple[ComparisonRow, ...]
    table: str  # the Markdown table
    files: tuple[Path, ...]


def plot_comparison(rows: Sequence[ComparisonRow], path: Path) -> Path:
    """Grouped bars: test accuracy of the NN baseline and of RockNet per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(rows)), 4))
    nn = [r.nn_test_accuracy for r in rows]
    rock = [r.rocknet_test_accuracy or 0.0 for r in rows]
    ax.bar(x - 0.2, nn, 0.4, label="on-device NN (1 device)")
    nodes = rows[0].rocknet_nodes
    ax.bar(x + 0.2, rock, 0.4, label=f"RockNet ({nodes} devices)" if nodes else "RockNet")
    for xi, a, b in zip(x, nn, rock):
        ax.text(xi - 0.2, a + 0.01, f"{a:.2f}", ha="center", fontsize=8)
        ax.text(xi + 0.2, b + 0.01, f"{b:.2f}", ha="center", fontsize=8)
    ax.set_xticks(x, [r.dataset for r in rows])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy")
    ax.set_title("RockNet vs on-device NN training")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_comparison(
    datasets: list[str],
    out_dir: Path,
    nodes: int = 20,
    epochs: int | None = None,
    nn_epochs: int | None = None,
    rocknet: bool = True,
    data_dir: Path | None = None,
    reuse: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ComparisonResult:
    """Baseline (and RockNet at ``nodes`` devices) per dataset; writes the table and plot."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, raw = [], {}
    for name in datasets:
        if echo:
            echo(f"{name}: training the on-device NN baseline ...")
        nn = nn_baseline_for_dataset(name, data_dir=data_dir, epochs=nn_epochs)
        rock = None
        if rocknet:
            if echo:
                echo(f"{name}: running RockNet on {nodes} node processes ...")
            opts = SweepOptions(dataset=name, out_dir=out, nodes=(nodes,), epochs=epochs, data_dir=data_dir,
                                baseline=False, reuse=reuse)
            # The same place as `rocknet sweep --out OUT/<dataset>` puts its runs: --reuse shares them.
            rock = run_point(opts, nodes, out / name / "runs" / f"N{nodes:02d}")
        raw[name] = {"nn": nn, "rocknet": None if rock is None else rock.as_dict()}
        rows.append(comparison_row(nn, rock))
    (out / "baseline.json").write_text(json.dumps(raw, indent=2))
    with (out / "baseline.csv").open("w", newline="") as fh:
        plain = [r.as_dict() for r in rows]
        keys = list(dict.fromkeys(k for r in plain for k in r))
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(plain)
    png = plot_comparison(rows, out / "baseline_accuracy.png")
    table = comparison_markdown(rows)
    (out / "baseline.md").write_text(
        "# RockNet vs the on-device NN baseline\n\n"
        "NN: tanh MLP, 10 hidden layers of 17 neurons, Adam lr 1e-3, trained from scratch on one "
        f"device for {rows[0].nn_epochs} epochs on the same int8 series (scaled to [-1, 1]); "
        "final-epoch test accuracy; its latency and energy are modeled "
        "CPU time on a Cortex-M4F at 64 MHz (no radio). RockNet: the testbed's measurements, "
        "per device, mean over the training rounds. Training time: NN, all its epochs; RockNet, the sum "
        "of its training rounds (calibration and evaluation rounds not counted).\n\n"
        f"{table}\n\n![accuracy]({png.name})\n"
    )
    return ComparisonResult(tuple(rows), table, (out / "baseline.csv", out / "baseline.md", png))


# ----------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> None:
    """Add ``baseline`` to the ``rocknet`` command's subparsers."""
    p = subparsers.add_parser("baseline", help="on-device NN baseline next to RockNet (accuracy, RAM, latency, energy)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=",".join(DEFAULT_DATASETS),
                   help="comma list of UCR datasets (default %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None, help="UCR 2018 archive root")
    p.add_argument("--nodes", type=int, default=20, help="RockNet devices (default %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="RockNet epochs (default: the model's)")
    p.add_argument("--nn-epochs", type=int, default=None, help="NN baseline epochs (default 1000)")
    p.add_argument("--no-rocknet", action="store_true", help="only the NN baseline")
    p.add_argument("--reuse", action="store_true",
                   help="reuse finished RockNet runs under OUT/<dataset>/runs (rocknet sweep's, too)")
    p.add_argument("--out", type=Path, default=Path("sweeps"), help="output folder (default %(default)s)")


def main(args: argparse.Namespace) -> int:
    """Run ``rocknet baseline``; 0 on success, 2 for a bad argument, 3 when a run failed."""
    from coordinator.service.server import RunAborted

    logging.getLogger("rocknet").setLevel(logging.WARNING)
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()]
    if not datasets:
        print("rocknet baseline: --dataset needs at least one name", file=sys.stderr)
        return 2
    try:
        result = run_comparison(datasets, args.out, nodes=args.nodes, epochs=args.epochs,
                                nn_epochs=args.nn_epochs, rocknet=not args.no_rocknet,
                                data_dir=args.data_dir, reuse=args.reuse, echo=lambda s: print(s, flush=True))
    except (ValueError, BaselineError) as exc:
        print(f"rocknet baseline: {exc}", file=sys.stderr)
        return 2
    except RunAborted as exc:
        print(f"rocknet baseline: a run was aborted: {exc}", file=sys.stderr)
        return 3
    print()
    print(result.table)
    print(f"\nwritten: {', '.join(str(f) for f in result.files)}")
    return 0


def _standalone(argv: list[str] | None = None) -> int:
    from coordinator.ui.subcommand import run_standalone

    return run_standalone("baseline", add_parser, main, argv)


__all__ = ["BaselineError", "ComparisonResult", "ComparisonRow", "add_parser", "comparison_markdown",
           "comparison_row", "main", "nn_baseline_for_dataset", "run_comparison", "run_nn_baseline"]

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(_standalone())
