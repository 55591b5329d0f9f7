"""Benchmark of a whole ``rocknet run``: when each phase is reached, seconds after launch.

Runs the main job (``rocknet run --nodes 20 --dataset GunPoint``, a fresh ``--out`` each
time) as a subprocess and reads its INFO log (``%(asctime)s``, millisecond resolution) for
the milestones below; the exit is the moment the process is reaped. With several ``--tree``
the code trees take turns (A B A B ...), so that a drift of the machine's speed (a shared
host) hits them alike; the table gives each milestone's median over the runs of a tree.

- ``setting up``: the CLI started and imported the launcher (``coordinator/service/launch.py``);
- ``zygote ready``: the zygote has loaded the node code and kernels;
- ``nodes wanted``: the coordinator waits for its nodes (they are being forked);
- ``run started``: every node registered;
- ``run finished``: the last exchange and the FINALs are done;
- ``exit``: summary, reference, weights, processes stopped, the launcher gone.

Run: ``.venv/bin/python benchmarks/startup.py [--runs 5] [--tree OTHER_CHECKOUT --tree .]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Milestone -> the text of the log line that marks it.
MILESTONES = {
    "setting up": "rocknet.launcher INFO setting up",
    "zygote ready": "ready (",
    "nodes wanted": "INFO waiting for",
    "run started": "event run_started",
    "run finished": "event run_finished",
}


def _log_time(line: str) -> float:
    """Epoch seconds of a log line's ``asctime`` (``2026-12-03 06:23:56,155``, local time)."""
    stamp, ms = line[:23].split(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000.0


def one_run(tree: Path, flags: list[str]) -> dict[str, float]:
    """One main job from ``tree``: seconds after launch of each milestone, and of the exit."""
    with tempfile.TemporaryDirectory(prefix="rocknet-startup-") as work:
        cmd = [sys.executable, "-m", "coordinator.ui.cli", "run", "--nodes", "20", "--dataset", "GunPoint",
               "--out", str(Path(work) / "run"), *flags]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        started = time.time()
        done = subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=600)
        ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{tree}: exit {done.returncode}\n{done.stderr[-2000:]}")
    out: dict[str, float] = {}
    for line in done.stderr.splitlines():
        for name, text in MILESTONES.items():
            if name not in out and text in line:
                out[name] = _log_time(line) - started
    out["exit"] = ended - started
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs of each tree (after one warm-up each)")
    p.add_argument("--tree", type=Path, action="append",
                   help="a checkout of the project to run (several: taken in turn); default this one")
    p.add_argument("--flag", action="append", default=[], help="one more flag for rocknet run")
    a = p.parse_args(argv)
    trees = [t.resolve() for t in (a.tree or [ROOT])]
    for tree in trees:  # warm-up: numba's cache, the page cache
        one_run(tree, a.flag)
    runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
    for _ in range(a.runs):
        for tree in trees:
            runs[tree].append(one_run(tree, a.flag))
    names = [*MILESTONES, "exit"]
    print("| milestone (s after launch, median) | " + " | ".join(str(t) for t in trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for name in names:
        cells = []
        for tree in trees:
            values = [r[name] for r in runs[tree] if name in r]
            cells.append(f"{statistics.median(values):.3f}" if values else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
