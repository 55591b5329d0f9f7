"""The same run on the process backend and the in-process backend, side by side.

Prints each backend's whole-run wall time, its exchanges' wall time and the ratio, and checks
that both wrote bitwise-equal weights (same seed, same loss):

    python benchmarks/backends.py [--nodes 20] [--dataset GunPoint] [--epochs 2] [--loss 0.5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coordinator.service.launch import LaunchOptions, run_testbed  # noqa: E402
from coordinator.service.run_setup import RunArgs  # noqa: E402
from coordinator.service.server import CoordinatorOptions  # noqa: E402


def one(args: RunArgs, out: Path, in_process: bool) -> tuple[float, dict]:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0, in_process=in_process)
    started = time.perf_counter()
    summary = run_testbed(args, LaunchOptions(out_dir=out, coordinator=coord, progress=False, reference=False))
    return time.perf_counter() - started, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--dataset", default="GunPoint")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--loss", type=float, default=0.5)
    a = p.parse_args(argv)
    args = RunArgs(dataset=a.dataset, nodes=a.nodes, epochs=a.epochs, loss=a.loss)
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for name, in_process in (("processes", False), ("inprocess", True)):
            rows[name] = one(args, Path(tmp) / name, in_process)
        with np.load(Path(tmp) / "processes" / "weights.npz") as x, np.load(Path(tmp) / "inprocess" / "weights.npz") as y:
            equal = sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)
    print(f"{a.nodes} devices, {a.dataset}, {a.epochs} epochs, loss {a.loss}")
    print(f"{'backend':<10} {'run wall s':>10} {'exchanges s':>12} {'rounds':>7}")
    for name, (wall, s) in rows.items():
        print(f"{name:<10} {wall:>10.2f} {s['exchange_wall_s_total']:>12.2f} {s['rounds']:>7}")
    pw, iw = rows["processes"][0], rows["inprocess"][0]
    pe, ie = rows["processes"][1]["exchange_wall_s_total"], rows["inprocess"][1]["exchange_wall_s_total"]
    print(f"ratio processes/inprocess: run {pw / iw:.2f}x, exchanges {pe / ie:.2f}x")
    print(f"weights bitwise equal: {equal}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
