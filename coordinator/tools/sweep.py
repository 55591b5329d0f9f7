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
import csv
import json
import logging
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from protocol.air.energy import DEFAULT_CONSTANTS
from protocol.config.model import ModelConfig, fit_dilations, kernel_ranges
from protocol.config.run import DEFAULT_RAM_BUDGET_BYTES

log = logging.getLogger("rocknet.sweep")

#: The budget the sweep's runs are started with, so that every N is measured.
LIFTED_BUDGET_BYTES = 1 << 30
DEFAULT_NODES = (1, 2, 5, 10, 15, 20)

#: Columns of sweep.csv, in order.
COLUMNS = (
    "dataset", "nodes", "epochs", "optimizer", "features_total", "kernels_per_device",
    "features_per_device", "ram_bytes", "ram_kib", "ram_budget_bytes", "fits",
    "rounds", "train_rounds", "virtual_time_s", "round_latency_s", "train_round_latency_s",
    "train_round_compute_s", "train_round_comm_s", "train_round_slots",
    "energy_per_train_sample_mj", "energy_per_train_sample_mj_max", "cpu_energy_per_train_sample_mj",
    "energy_run_mj_mean",
    "cpu_mj_mean", "tx_mj_mean", "rx_mj_mean", "low_power_mj_mean", "radio_on_s_mean",
    "test_accuracy", "centralized_test_accuracy", "packet_loss_ratio", "wall_time_s", "phase",
)


@dataclass(frozen=True)
class SweepOptions:
    """What to sweep and where to write it."""

    dataset: str
    out_dir: Path
    nodes: tuple[int, ...] = DEFAULT_NODES
    epochs: int | None = None
    optimizer: str = "adam"
    num_features: int = 10_000
    protocol: str = "mixer"
    seed: int = 0
    data_dir: Path | None = None
    ram_budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES
    reference: bool = False
    baseline: bool = True
    nn_epochs: int | None = None
    reuse: bool = False
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("--nodes needs at least one N")
        if any(n < 1 for n in self.nodes):
            raise ValueError(f"every N must be >= 1, got {list(self.nodes)}")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"--nodes has duplicates: {list(self.nodes)}")
        if self.ram_budget_bytes < 1:
            raise ValueError("--ram-budget must be a positive number of bytes")


# ----------------------------------------------------------------------------- reading runs


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """``(config, summary, round records sorted by round, event records)`` of a run directory."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{run_dir} is not a finished run directory (missing {Path(exc.filename).name})") from exc
    rounds: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        with metrics.open() as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                if rec.get("type") == "round":
                    rounds.append(rec)
                elif rec.get("type") == "event":
                    events.append(rec)
    rounds.sort(key=lambda r: r["round"])
    return config, summary, rounds, events


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def train_sample_energy_mj(rounds: list[dict[str, Any]], n_devices: int) -> list[float] | None:
    """Per device: mean energy increment (mJ) over the training rounds.

    Needs consecutive lockstep records (each carries the cumulative per-device energy right
    after its round); returns None when no training round has its predecessor recorded.
    """
    by_round = {r["round"]: r for r in rounds}
    sums = [0.0] * n_devices
    count = 0
    for r in rounds:
        if r.get("kind") != "train":
            continue
        prev = by_round.get(r["round"] - 1)
        if prev is None or not r.get("nodes") or not prev.get("nodes"):
            continue
        now = {n["id"]: n["energy_mj"] for n in r["nodes"]}
        before = {n["id"]: n["energy_mj"] for n in prev["nodes"]}
        for d in range(n_devices):
            sums[d] += now.get(d, 0.0) - before.get(d, 0.0)
        count += 1
    if count == 0:
        return None
    return [s / count for s in sums]


def analyze_run(run_dir: Path, budget_bytes: int = DEFAULT_RAM_BUDGET_BYTES) -> dict[str, Any]:
    """One sweep row (the keys of :data:`COLUMNS`) from a run directory."""
    config, summary, rounds, _ = read_run(run_dir)
    run = config["run"]
    model = ModelConfig.from_dict(run["model"])
    n = int(summary["nodes"])
    _, fpd = fit_dilations(int(run["series_length"]), model)
    k0, k1 = kernel_ranges(n)[0]
    per_node = sorted(summary["per_node"], key=lambda p: p["id"])
    ram = max((int(p["ram_bytes"]) for p in per_node), default=0)
    train = [r for r in rounds if r.get("kind") == "train"]
    comm = [r["slots"] * r["slot_s"] for r in train]
    lat = [r["latency_s"] for r in train]
    energy = None
    if config.get("coordinator", {}).get("lockstep"):
        energy = train_sample_energy_mj(rounds, n)

    def part_mean(key: str) -> float | None:
        return _mean([p["energy_parts_mj"][key] for p in per_node if "energy_parts_mj" in p])

    rounds_done = int(summary["rounds"])
    return {
        "dataset": summary["dataset"],
        "nodes": n,
        "epochs": int(summary["epochs"]),
        "optimizer": model.optimizer,
        "features_total": 84 * int(fpd.sum()),
        "kernels_per_device": k1 - k0,
        "features_per_device": (k1 - k0) * int(fpd.sum()),
        "ram_bytes": ram,
        "ram_kib": ram / 1024,
        "ram_budget_bytes": budget_bytes,
        "fits": ram <= budget_bytes,
        "rounds": rounds_done,
        "train_rounds": len(train),
        "virtual_time_s": float(summary["virtual_time_s"]),
        "round_latency_s": float(summary["virtual_time_s"]) / rounds_done if rounds_done else None,
        "train_round_latency_s": _mean(lat),
        "train_round_compute_s": _mean([a - c for a, c in zip(lat, comm)]),
        "train_round_comm_s": _mean(comm),
        "train_round_slots": _mean([float(r["slots"]) for r in train]),
        "energy_per_train_sample_mj": _mean(energy) if energy else None,
        "energy_per_train_sample_mj_max": max(energy) if energy else None,
        "cpu_energy_per_train_sample_mj": _cpu_mj(_mean([a - c for a, c in zip(lat, comm)])),
        "energy_run_mj_mean": _mean([p["energy_mj"] for p in per_node]),
        "cpu_mj_mean": part_mean("cpu_mj"),
        "tx_mj_mean": part_mean("tx_mj"),
        "rx_mj_mean": part_mean("rx_mj"),
        "low_power_mj_mean": part_mean("low_power_mj"),
        "radio_on_s_mean": _mean([p["radio_on_s"] for p in per_node]),
        "test_accuracy": summary.get("test_accuracy"),
        "centralized_test_accuracy": summary.get("centralized_test_accuracy"),
        "packet_loss_ratio": summary.get("packet_loss_ratio"),
        "wall_time_s": summary.get("wall_time_s"),
        "phase": summary.get("phase"),
    }


def _cpu_mj(compute_s: float | None) -> float | None:
    """CPU energy (mJ) of ``compute_s`` seconds: the largest device computes for the whole
    compute window (it sets it), at the CPU current of :mod:`protocol.air.energy`."""
    if compute_s is None:
        return None
    return compute_s * DEFAULT_CONSTANTS.voltage_v * DEFAULT_CONSTANTS.cpu_ma


# ----------------------------------------------------------------------------- running


def run_args_for(opts: SweepOptions, n: int) -> Any:
    """The :class:`~coordinator.service.run_setup.RunArgs` of the sweep's run at ``n`` nodes."""
    from coordinator.service.run_setup import RunArgs

    return RunArgs(
        dataset=opts.dataset, nodes=n, epochs=opts.epochs, protocol=opts.protocol, seed=opts.seed,
        data_dir=opts.data_dir, optimizer=opts.optimizer, num_features=opts.num_features,
        ram_budget_bytes=LIFTED_BUDGET_BYTES, model_overrides=dict(opts.model_overrides),
    )


def _reusable(run_dir: Path, args: Any) -> bool:
    """A finished run in ``run_dir`` made with exactly ``args``."""
    try:
        config, summary, _, _ = read_run(run_dir)
    except ValueError:
        return False
    wanted = json.loads(json.dumps(asdict(args), default=str))  # as config.json holds it
    return summary.get("phase") == "finished" and config.get("args") == wanted


def run_point(opts: SweepOptions, n: int, run_dir: Path) -> dict[str, Any]:
    """Run the testbed at ``n`` nodes into ``run_dir`` (lockstep, free ports) and analyze it."""
    from coordinator.service.launch import LaunchOptions, run_testbed
    from coordinator.service.server import CoordinatorOptions

    args = run_args_for(opts, n)
    if opts.reuse and _reusable(run_dir, args):
        log.info("N=%d: reusing the finished run in %s", n, run_dir)
        return analyze_run(run_dir, opts.ram_budget_bytes)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # metrics.jsonl is appended to: never mix two runs
    launch = LaunchOptions(
        out_dir=run_dir,
        coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0, lockstep=True),
        reference=opts.reference,
        progress=False,
    )
    run_testbed(args, launch)
    return analyze_run(run_dir, opts.ram_budget_bytes)


def run_sweep(opts: SweepOptions, echo: Any = None) -> dict[str, Any]:
    """Run every N, write the table and the plots; returns ``{"rows", "baseline", "files"}``."""
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sorted(opts.nodes):
        if echo:
            echo(f"N={n}: running {n} node process(es) on {opts.dataset} ...")
        row = run_point(opts, n, out / "runs" / f"N{n:02d}")
        rows.append(row)
        if echo:
            echo(f"N={n}: RAM {row['ram_kib']:.1f} KiB{'' if row['fits'] else ' (does not fit)'}, "
                 f"round {_ms(row['train_round_latency_s'])} ms, "
                 f"energy/sample {_num(row['energy_per_train_sample_mj'], 3)} mJ, "
                 f"accuracy {_num(row['test_accuracy'], 4)}")
    baseline = None
    if opts.baseline:
        from coordinator.tools.baseline import nn_baseline_for_dataset

        if echo:
            echo(f"training the on-device NN baseline on {opts.dataset} ...")
        baseline = nn_baseline_for_dataset(opts.dataset, data_dir=opts.data_dir, epochs=opts.nn_epochs,
                                           seed=opts.seed)
        (out / "baseline.json").write_text(json.dumps(baseline, indent=2))
    files = [write_csv(rows, out / "sweep.csv")]
    pngs = plot_sweep(rows, out, baseline)
    files.append(write_markdown(rows, out / "sweep.md", pngs, baseline, opts))
    files += pngs
    (out / "sweep.json").write_text(json.dumps({"options": _plain_options(opts), "rows": rows}, indent=2))
    return {"rows": rows, "baseline": baseline, "files": files}


def _plain_options(opts: SweepOptions) -> dict[str, Any]:
    d = asdict(opts)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


# ----------------------------------------------------------------------------- outputs


def _num(x: Any, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ms(x: Any) -> str:
    return "n/a" if x is None else f"{1e3 * x:.1f}"


def reduction(first: float | None, last: float | None) -> float | None:
    """Percent reduction from ``first`` to ``last`` (positive: smaller)."""
    if first is None or last is None or first == 0:
        return None
    return 100.0 * (first - last) / first


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in COLUMNS})
    return path


def ram_cell(row: dict[str, Any]) -> str:
    """The RAM column: KiB, and "does not fit" where the ledger exceeds the budget."""
    text = f"{row['ram_kib']:.1f}"
    if not row["fits"]:
        text += f" (does not fit {row['ram_budget_bytes'] / 1024:.0f} KiB)"
    return text


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The sweep table (one row per N) and the reduction from the smallest to the largest N."""
    head = ("| N | kernels / device | features / device | RAM / device (KiB) | latency / round (ms): "
            "compute + comm | energy / training sample / device (mJ), mean (max) | of which CPU, largest "
            "device (mJ) | test accuracy |")
    lines = [head, "|---:|---:|---:|---|---|---|---:|---:|"]
    for r in rows:
        lat = (f"{_ms(r['train_round_latency_s'])} = {_ms(r['train_round_compute_s'])} + "
               f"{_ms(r['train_round_comm_s'])}")
        energy = f"{_num(r['energy_per_train_sample_mj'], 3)} ({_num(r['energy_per_train_sample_mj_max'], 3)})"
        lines.append(f"| {r['nodes']} | {r['kernels_per_device']} | {r['features_per_device']} | {ram_cell(r)} "
                     f"| {lat} | {energy} | {_num(r['cpu_energy_per_train_sample_mj'], 3)} "
                     f"| {_num(r['test_accuracy'], 4)} |")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        red = [reduction(a[k], b[k]) for k in ("ram_bytes", "train_round_latency_s", "energy_per_train_sample_mj",
                                                "cpu_energy_per_train_sample_mj")]
        cells = ["n/a" if x is None else f"{x:.1f} %" for x in red]
        lines.append(f"| reduction N={a['nodes']} → N={b['nodes']} | | | {cells[0]} | {cells[1]} | {cells[2]} "
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


def write_markdown(rows: list[dict[str, Any]], path: Path, pngs: list[Path],
                   baseline: dict[str, Any] | None, opts: SweepOptions) -> Path:
    r0 = rows[0]
    lines = [
        f"# Sweep: {r0['dataset']}, N = {', '.join(str(r['nodes']) for r in rows)}",
        "",
        f"{r0['features_total']} features, optimizer {r0['optimizer']}, {r0['epochs']} epochs, "
        f"protocol {opts.protocol}, seed {opts.seed}. RAM is the largest device's ledger (device 0); "
        f"every run had its budget lifted so that configurations that do not fit "
        f"{opts.ram_budget_bytes / 1024:.0f} KiB were measured too. Latency and energy are the means "
        "over the training rounds (lockstep run: one round carries one training sample).",
        "",
        markdown_table(rows),
        "",
    ]
    misfits = [r["nodes"] for r in rows if not r["fits"]]
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


def plot_sweep(rows: list[dict[str, Any]], out_dir: Path, baseline: dict[str, Any] | None = None) -> list[Path]:
    """PNG plots against N: RAM (with the budget), latency, energy, accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["nodes"] for r in rows]
    name = rows[0]["dataset"]
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
    kib = [r["ram_kib"] for r in rows]
    ax.plot(ns, kib, "o-", label="RockNet, per device (ledger)")
    bad = [(n, k) for n, k, r in zip(ns, kib, rows) if not r["fits"]]
    if bad:
        ax.plot([b[0] for b in bad], [b[1] for b in bad], "rx", markersize=10, label="does not fit")
    budget = rows[0]["ram_budget_bytes"] / 1024
    ax.axhline(budget, color="r", ls="--", lw=1, label=f"budget {budget:.0f} KiB")
    if baseline is not None:
        ax.axhline(baseline["ram"]["total_bytes"] / 1024, color="gray", ls=":", label="NN baseline (1 device)")
    ax.set_ylim(bottom=0)
    finish(fig, ax, "sweep_ram.png", "RAM per device (KiB)", "RAM per device")

    fig, ax = plt.subplots(figsize=(6, 4))
    comp = [1e3 * (r["train_round_compute_s"] or 0) for r in rows]
    comm = [1e3 * (r["train_round_comm_s"] or 0) for r in rows]
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
    ax.plot(ns, [r["energy_per_train_sample_mj"] for r in rows], "o-", label="mean over devices")
    ax.plot(ns, [r["energy_per_train_sample_mj_max"] for r in rows], "s--", alpha=0.7, label="most-consuming device")
    ax.plot(ns, [r["cpu_energy_per_train_sample_mj"] for r in rows], "^:", label="of which CPU (largest device)")
    if baseline is not None:
        ax.axhline(baseline["timing"]["train_sample_mj"], color="gray", ls=":", label="NN baseline (CPU only)")
    ax.set_ylim(bottom=0)
    finish(fig, ax, "sweep_energy.png", "energy per training sample (mJ)", "energy per training sample per device")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, [r["test_accuracy"] for r in rows], "o-", label="RockNet (testbed)")
    if any(r.get("centralized_test_accuracy") is not None for r in rows):
        ax.plot(ns, [r["centralized_test_accuracy"] for r in rows], "k+", label="centralized reference")
    if baseline is not None:
        ax.axhline(baseline["test_accuracy"], color="gray", ls=":", label="NN baseline")
    ax.set_ylim(0, 1.02)
    finish(fig, ax, "sweep_accuracy.png", "test accuracy", "accuracy")
    return files


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


def main(args: argparse.Namespace) -> int:
    """Run ``rocknet sweep``; 0 on success, 2 for a bad argument, 3 when a run failed."""
    from coordinator.service.server import RunAborted
    from coordinator.service.run_setup import SetupError

    logging.getLogger("rocknet").setLevel(logging.WARNING)
    try:
        opts = SweepOptions(
            dataset=args.dataset, out_dir=args.out or Path("sweeps") / args.dataset, nodes=tuple(args.nodes),
            epochs=args.epochs, optimizer=args.optimizer, num_features=args.num_features,
            protocol=args.protocol, seed=args.seed, data_dir=args.data_dir, ram_budget_bytes=args.ram_budget,
            reference=args.reference, baseline=not args.no_baseline, nn_epochs=args.nn_epochs, reuse=args.reuse,
        )
        result = run_sweep(opts, echo=lambda s: print(s, flush=True))
    except (ValueError, SetupError) as exc:
        print(f"rocknet sweep: {exc}", file=sys.stderr)
        return 2
    except RunAborted as exc:
        print(f"rocknet sweep: a run was aborted: {exc}", file=sys.stderr)
        return 3
    print()
    print(markdown_table(result["rows"]))
    if result["baseline"] is not None:
        print(baseline_line(result["baseline"]))
    print(f"\nwritten: {', '.join(str(f) for f in result['files'])}")
    return 0 if all(r["phase"] == "finished" for r in result["rows"]) else 3


def _standalone(argv: list[str] | None = None) -> int:
    from coordinator.ui.subcommand import run_standalone

    return run_standalone("sweep", add_parser, main, argv)


__all__ = ["SweepOptions", "add_parser", "analyze_run", "main", "markdown_table", "plot_sweep",
           "read_run", "run_point", "run_sweep", "train_sample_energy_mj"]

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(_standalone())
