"""Benchmark of the emulated air: time to resolve one round with Mixer and Glossy.

For N = 21, 50, 100, 200 topology nodes (``default_testbed(N - 1)``: N - 1 devices + 1 relay)
and G = 1 + (N - 1) packets (the initiator's plus one per device, as in a logits round),
through the public API (``resolve`` per round, with a ``LossModel`` as the coordinator uses
it) and in batch mode (``resolve_batch`` over consecutive rounds, time per round).
Each figure is the mean per round within a block of calls; the table gives the best and the
median block (the machine may be shared, the best block is the least disturbed).

Run: ``.venv/bin/python benchmarks/air.py [--quick]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.air.loss import LossModel  # noqa: E402
from protocol.air.radio import resolve, resolve_batch  # noqa: E402
from protocol.air.topology import Topology  # noqa: E402


def _blocks(fn: Callable[[int], object], per_block: int, n_blocks: int, per_call: int = 1) -> tuple[float, float]:
    """(best, median) milliseconds per round over ``n_blocks`` blocks of ``per_block`` calls."""
    times = []
    r = 1_000
    for _ in range(n_blocks):
        t0 = time.perf_counter()
        for _ in range(per_block):
            fn(r)
            r += per_call
        times.append((time.perf_counter() - t0) / (per_block * per_call) * 1e3)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    blocks = 3 if args.quick else 7
    rows = []
    mixer_21 = None
    for n in (21, 50, 100, 200):
        topo = Topology.default_testbed(n - 1)
        src = np.concatenate([[topo.initiator], topo.device_nodes]).astype(np.int16)
        g = src.size
        per = max(5, int(4000 / (n * g) * 10)) if not args.quick else 5
        loss = LossModel(topo)
        for proto in ("mixer", "mixer-coordinated", "glossy"):
            resolve(proto, topo, src, 0, seed=1)  # compile / load the numba cache
            single = _blocks(lambda r: resolve(proto, topo, src, r, loss=loss, seed=1), per, blocks)
            batch_n = 100 if n <= 50 else 20
            batch = _blocks(lambda r: resolve_batch(proto, topo, [src] * batch_n, range(r, r + batch_n),
                                                    loss=loss, seed=1),
                            1, blocks, per_call=batch_n)
            res = resolve_batch(proto, topo, [src] * 20, range(20), seed=1)
            complete = np.mean([x.complete for x in res])
            slots = np.mean([x.completion_slot for x in res if x.complete]) if complete else float("nan")
            rows.append((proto, n, g, res[0].n_slots, slots, complete, *single, *batch))
            if proto == "mixer" and n == 21:
                mixer_21 = single
    print(f"{'protocol':17s} {'nodes':>5s} {'G':>4s} {'slots':>6s} {'done@':>6s} {'compl':>6s} "
          f"{'round ms best':>13s} {'median':>7s} {'batch ms/round best':>19s} {'median':>7s}")
    for proto, n, g, slots, done, comp, sb, sm, bb, bm in rows:
        print(f"{proto:17s} {n:5d} {g:4d} {slots:6d} {done:6.1f} {comp:6.2f} "
              f"{sb:13.3f} {sm:7.3f} {bb:19.3f} {bm:7.3f}")
    assert mixer_21 is not None
    print(f"mixer_21_ms: {mixer_21[0]:.3f}")
    print(f"mixer_21_ms_median: {mixer_21[1]:.3f}")


if __name__ == "__main__":
    main()
