"""The radio resolved while the devices compute, against resolving it once their TXs are in.

Runs the same 20-process run with ``CoordinatorOptions(speculate=...)`` on and off,
interleaved (so both see the same machine load), and prints each one's exchange wall time
and median exchange, and the ratio; both runs must give bitwise the same weights:

    python benchmarks/speculation.py [--nodes 20] [--epochs 15] [--repeat 3] [--lockstep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coordinator.service.launch import LaunchOptions, run_testbed  # noqa: E402
from coordinator.service.run_setup import RunArgs  # noqa: E402
from coordinator.service.server import CoordinatorOptions  # noqa: E402


def one(args: RunArgs, out: Path, speculate: bool, lockstep: bool) -> dict[str, Any]:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0, lockstep=lockstep,
                               speculate=speculate)
    return run_testbed(args, LaunchOptions(out_dir=out, coordinator=coord, progress=False,
                                           reference=False, node_logs=False))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lockstep", action="store_true")
    a = p.parse_args(argv)
    args = RunArgs(dataset="GunPoint", nodes=a.nodes, epochs=a.epochs)
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        one(args, Path(tmp) / "warm", True, a.lockstep)  # numba caches, page cache
        for i in range(a.repeat):
            for speculate in (False, True):
                runs[speculate].append(one(args, Path(tmp) / f"{i}-{speculate}", speculate, a.lockstep))
        with np.load(Path(tmp) / "0-False" / "weights.npz") as x, np.load(Path(tmp) / "0-True" / "weights.npz") as y:
            equal = sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)
    mode = "lockstep" if a.lockstep else "batch"
    print(f"{a.nodes} node processes, GunPoint, {a.epochs} epochs, {mode}; medians of {a.repeat}, interleaved")
    print(f"{'radio resolved':<28} {'exchanges s':>12} {'median exchange ms':>19}")
    totals = {}
    for speculate, label in ((False, "after the TXs (baseline)"), (True, "while devices compute")):
        totals[speculate] = statistics.median(s["exchange_wall_s_total"] for s in runs[speculate])
        median_ms = statistics.median(s["exchange_wall_ms_median"] for s in runs[speculate])
        print(f"{label:<28} {totals[speculate]:>12.3f} {median_ms:>19.2f}")
    print(f"ratio baseline / speculative: {totals[False] / totals[True]:.2f}x")
    print(f"weights bitwise equal: {equal}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
