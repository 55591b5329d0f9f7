"""Scaling study: per-device RAM, compute, energy and the emulated round length against N.

The paper measured N = 7 ... 19 only. Past a few dozen devices the per-device compute keeps
shrinking (each device holds fewer (kernel, dilation) units) while Mixer's round grows with
its generation size ``G = 1 + series packets + N`` (``max(3G, 150)`` slots, and a longer
slot as the coding header grows): somewhere the two cross. This prints both

* the **model** (:func:`node.mcu.plan.model_point`, what ``rocknet model`` prints) for the
  requested N and, over every N from 1 to ``84 * D``, the N that minimizes the latency and
  the energy per training sample, for the ``tuned`` and ``firmware`` device profiles; and
* **measured** rows from finished run directories (``--run DIR``, repeatable): the
  coordinator's summary (largest device's MCU RAM, emulated round length per training
  sample, energy per training sample per device, modeled compute per device, wall per
  exchange, accuracy against the centralized reference) and, when the run directory holds a
  ``host_memory.json`` (written by ``--sample-memory`` runs of this script, see below), the
  host RAM of all its processes.

and saves a four-panel plot (matplotlib, Agg) to ``--out``.

Usage::

    python -m benchmarks.scaling --dataset OSULeaf --nodes 20,50,100,200 \\
        --run runs/osuleaf-20n-e1 --run runs/osuleaf-200n-e1 --out runs/scaling.png

    # sample the host memory of a running testbed (PID of ``rocknet run``) every 15 s:
    python -m benchmarks.scaling --sample-memory PID --sample-out runs/x/host_memory.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from node.mcu import profiles
from node.mcu.plan import KNOWN_SHAPES, ModelPoint, model_point
from protocol.config.model import ModelConfig, fit_dilations, max_devices

PROFILE_NAMES = ("tuned", "firmware")


@dataclass(frozen=True)
class MeasuredRow:
    """One finished run (seconds, bytes, mJ; host memory in bytes, None if not sampled)."""

    run_dir: str
    n_devices: int
    backend: str
    topology: str  # "default" (the office grid) or the topology file's name
    epochs: int
    ram_bytes: int  # largest device's MCU RAM ledger
    round_s: float  # emulated radio round per training sample
    energy_mj: float  # per training sample per device
    compute_s_per_device: float  # modeled MCU compute of the whole run, mean over devices
    exchange_wall_ms: float  # coordinator wall per exchange (median)
    wall_s: float
    test_accuracy: float | None
    reference_accuracy: float | None
    host_pss_bytes: int | None = None
    host_uss_bytes: int | None = None
    host_rss_bytes: int | None = None
    node_uss_bytes: int | None = None  # median USS of one node process


def measured_row(run_dir: Path) -> MeasuredRow:
    """Read a finished run directory (``summary.json``, optional ``host_memory.json``)."""
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise SystemExit(f"{run_dir}: no summary.json (is the run finished?)")
    s = json.loads(summary_path.read_text())
    per = s.get("per_train_sample", {})
    nodes = s.get("per_node", [])
    mem: dict[str, Any] = {}
    topology = "default"
    if (run_dir / "config.json").exists():
        topo = json.loads((run_dir / "config.json").read_text()).get("args", {}).get("topology")
        topology = Path(topo).stem if topo else "default"
    mem_path = run_dir / "host_memory.json"
    if mem_path.exists():
        mem = json.loads(mem_path.read_text())
    return MeasuredRow(
        run_dir=str(run_dir), n_devices=int(s["nodes"]), backend=str(s.get("backend", "?")),
        topology=topology,
        epochs=int(s.get("epochs", 0)), ram_bytes=int(s.get("peak_ram_bytes", 0)),
        round_s=float(per.get("latency_s", float("nan"))),
        energy_mj=float(per.get("energy_mj_per_device", float("nan"))),
        compute_s_per_device=statistics.fmean(float(n["compute_s_modeled"]) for n in nodes) if nodes else float("nan"),
        exchange_wall_ms=float(s.get("exchange_wall_ms_median", float("nan"))),
        wall_s=float(s.get("wall_time_s", float("nan"))),
        test_accuracy=s.get("test_accuracy"), reference_accuracy=s.get("centralized_test_accuracy"),
        host_pss_bytes=mem.get("pss"), host_uss_bytes=mem.get("uss"), host_rss_bytes=mem.get("rss"),
        node_uss_bytes=mem.get("node_uss_median"),
    )


def model_points(dataset: str, nodes: list[int], profile: str) -> list[ModelPoint]:
    """The device and round model of ``dataset`` at every N of ``nodes``."""
    length, n_classes, n_train, n_eval = KNOWN_SHAPES[dataset]
    prof = profiles.get_profile(profile)
    return [model_point(prof, ModelConfig(), n, length, n_classes, n_train, n_eval) for n in nodes]


def optimum(dataset: str, profile: str) -> dict[str, Any]:
    """Over N = 2 .. 84 * D: the N of least latency and of least energy per training sample
    (N = 1 has no radio round at all, so it is left out of the distributed optimum)."""
    length = KNOWN_SHAPES[dataset][0]
    n_max = max_devices(len(fit_dilations(length, ModelConfig())[0]))
    pts = model_points(dataset, list(range(2, n_max + 1)), profile)
    best_lat = min(pts, key=lambda p: p.latency_s)
    best_energy = min(pts, key=lambda p: p.energy_mj)
    best_ram = min(pts, key=lambda p: p.ram_bytes)
    return {"profile": profile, "n_max": n_max,
            "latency": (best_lat.n_devices, best_lat.latency_s),
            "energy": (best_energy.n_devices, best_energy.energy_mj),
            "ram": (best_ram.n_devices, best_ram.ram_bytes), "curve": pts}


def print_tables(dataset: str, nodes: list[int], rows: list[MeasuredRow]) -> list[dict[str, Any]]:
    optima = []
    for prof in PROFILE_NAMES:
        pts = model_points(dataset, nodes, prof)
        print(f"model, {dataset}, profile {prof} (largest device; per training sample)")
        print(f"{'N':>4} {'RAM B':>9} {'G':>4} {'slots':>5} {'slot µs':>7} {'round s':>8} "
              f"{'compute ms':>10} {'latency s':>9} {'energy mJ':>9}")
        for p in pts:
            print(f"{p.n_devices:>4} {p.ram_bytes:>9,d} {p.generation_size:>4} {p.slots:>5} "
                  f"{p.slot_s * 1e6:>7.0f} {p.round_s:>8.3f} {p.compute_s * 1e3:>10.2f} "
                  f"{p.latency_s:>9.4f} {p.energy_mj:>9.3f}")
        opt = optimum(dataset, prof)
        optima.append(opt)
        print(f"optimum over N = 2..{opt['n_max']}: latency {opt['latency'][1]:.4f} s at N = "
              f"{opt['latency'][0]}, energy {opt['energy'][1]:.3f} mJ at N = {opt['energy'][0]}, "
              f"RAM {opt['ram'][1]:,d} B at N = {opt['ram'][0]}\n")
    if rows:
        print("measured runs (emulated MCU figures from the coordinator; host RAM sampled)")
        print(f"{'N':>4} {'backend':>9} {'topology':>20} {'ep':>2} {'RAM B':>7} {'round s':>8} {'mJ/sample':>9} "
              f"{'compute s':>9} {'wall/exch ms':>12} {'acc':>6} {'ref':>6} {'host PSS MB':>11} "
              f"{'host RSS MB':>11} {'node USS MB':>11}")
        for r in sorted(rows, key=lambda r: (r.n_devices, r.backend)):
            def mb(v: int | None) -> str:
                return f"{v / 2**20:>11.0f}" if v is not None else f"{'-':>11}"
            acc = f"{r.test_accuracy:.4f}" if r.test_accuracy is not None else "-"
            ref = f"{r.reference_accuracy:.4f}" if r.reference_accuracy is not None else "-"
            print(f"{r.n_devices:>4} {r.backend:>9} {r.topology[:20]:>20} {r.epochs:>2} {r.ram_bytes:>7,d} {r.round_s:>8.3f} "
                  f"{r.energy_mj:>9.3f} {r.compute_s_per_device:>9.3f} {r.exchange_wall_ms:>12.0f} "
                  f"{acc:>6} {ref:>6} {mb(r.host_pss_bytes)} {mb(r.host_rss_bytes)} {mb(r.node_uss_bytes)}")
    return optima


def plot(dataset: str, optima: list[dict[str, Any]], rows: list[MeasuredRow], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    panels = [("RAM of the largest device (kB)", lambda p: p.ram_bytes / 1000, lambda r: r.ram_bytes / 1000),
              ("compute per training sample (ms)", lambda p: p.compute_s * 1e3, None),
              ("energy per training sample per device (mJ)", lambda p: p.energy_mj, lambda r: r.energy_mj),
              ("emulated round per training sample (s)", lambda p: p.latency_s, lambda r: r.round_s)]
    for ax, (title, model_y, meas_y) in zip(axes.flat, panels):
        for opt in optima:
            curve = opt["curve"]
            ax.plot([p.n_devices for p in curve], [model_y(p) for p in curve], label=f"model ({opt['profile']})")
        if meas_y is not None and rows:
            ax.plot([r.n_devices for r in rows], [meas_y(r) for r in rows], "o", color="k", label="measured run")
        ax.axvline(84, color="grey", lw=0.8, ls=":")
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log")
        if title.startswith("compute"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("devices N (dotted: 84, past it the split is below the kernel)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"RockNet scaling, {dataset}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"plot: {out}")


def sample_memory(pid: int, out: Path, period_s: float) -> None:
    """Until process ``pid`` ends: sum USS, PSS and RSS over it and all its descendants every
    ``period_s`` seconds; write the sample with the highest PSS to ``out`` (JSON)."""
    import psutil

    root = psutil.Process(pid)
    peak: dict[str, Any] = {}
    while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
        rows = []  # (is a node, rss, uss, pss)
        for p in [root, *root.children(recursive=True)]:
            try:
                m = p.memory_full_info()
                # a node is a child of the zygote (forked: the same command line) or a
                # plain ``python -m node`` process
                parent = p.parent()
                parent_cmd = " ".join(parent.cmdline()) if parent is not None else ""
                cmd = " ".join(p.cmdline())
                is_node = "node.zygote" in parent_cmd or " -m node " in f"{cmd} "
                rows.append((is_node, m.rss, m.uss, m.pss))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        nodes = sorted(r[2] for r in rows if r[0])
        sample = {"time": time.time(), "n_processes": len(rows), "rss": sum(r[1] for r in rows),
                  "uss": sum(r[2] for r in rows), "pss": sum(r[3] for r in rows),
                  "node_uss_median": nodes[len(nodes) // 2] if nodes else None,
                  "node_uss_max": nodes[-1] if nodes else None, "n_nodes": len(nodes)}
        if sample["pss"] > peak.get("pss", 0):
            peak = sample
            out.write_text(json.dumps(peak, indent=1))
        time.sleep(period_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="OSULeaf", choices=sorted(KNOWN_SHAPES))
    ap.add_argument("--nodes", default="20,50,100,200", help="comma list of N for the table")
    ap.add_argument("--run", action="append", default=[], type=Path, help="finished run directory (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("runs/scaling.png"), help="plot (PNG)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON here")
    ap.add_argument("--sample-memory", type=int, default=None, metavar="PID",
                    help="instead: sample the host memory of process PID and its children")
    ap.add_argument("--sample-out", type=Path, default=None, help="with --sample-memory: JSON file")
    ap.add_argument("--sample-period", type=float, default=15.0, help="seconds between samples")
    a = ap.parse_args(argv)
    if a.sample_memory is not None:
        if a.sample_out is None:
            ap.error("--sample-memory needs --sample-out FILE")
        sample_memory(a.sample_memory, a.sample_out, a.sample_period)
        return 0
    try:
        nodes = [int(x) for x in a.nodes.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--nodes must be a comma list of integers, got {a.nodes!r}")
    n_max = max_devices(len(fit_dilations(KNOWN_SHAPES[a.dataset][0], ModelConfig())[0]))
    if not nodes or any(not 1 <= n <= n_max for n in nodes):
        ap.error(f"--nodes: each N between 1 and {n_max} for {a.dataset}")
    rows = [measured_row(d) for d in a.run]
    optima = print_tables(a.dataset, nodes, rows)
    plot(a.dataset, optima, rows, a.out)
    if a.json is not None:
        a.json.write_text(json.dumps({
            "model": {o["profile"]: {"optimum": {k: o[k] for k in ("latency", "energy", "ram", "n_max")},
                                     "points": [asdict(p) for p in model_points(a.dataset, nodes, o["profile"])]}
                      for o in optima},
            "measured": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
