"""Throughput of our numba MiniRocket transform vs aeon's, single-threaded, same kernels.

Both transform the same int8-quantized series (aeon gets them as float32) with the same
fitted parameters (aeon's dilations, features per dilation and biases; ours in kernel-major
order). Ours runs as the whole model in one shard and as N shards one after the other (what
N devices compute together). The last line is ``ratio: X.XX`` = ours (one shard) / aeon.

    python benchmarks/transform.py [--dataset OSULeaf] [--repeats 9] [--shards 20]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _best_rates(fns: dict[str, Callable[[], object]], n_series: int, repeats: int) -> dict[str, float]:
    """Series per CPU second of each function's fastest run.

    CPU time of this process (``time.process_time``, all its threads), not wall time, so
    that other jobs on a shared machine do not count; runs are interleaved so that what
    they still disturb (caches, clocks) hits every contender alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return {name: n_series / t for name, t in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="OSULeaf", help="a bundled dataset (default OSULeaf)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--shards", type=int, default=20)
    args = parser.parse_args(argv)

    from numba import get_num_threads, set_num_threads

    from aeon.transformations.collection.convolution_based import MiniRocket
    from coordinator.service.datasets import load_dataset, quantize_int8
    from node.ml.minirocket import transform, transform_units
    from protocol.config.model import aeon_to_kernel_major, unit_offsets, unit_ranges

    set_num_threads(1)
    ds = load_dataset(args.dataset)
    x_train, x_test = quantize_int8(ds.x_train, ds.x_test)
    x = np.concatenate([x_train, x_test])
    x3 = x[:, None, :].astype(np.float32)

    mr = MiniRocket(n_jobs=1, random_state=0).fit(x_train[:, None, :].astype(np.float32))
    _, _, dilations, fpd, biases = mr.parameters
    perm = aeon_to_kernel_major(fpd)
    ours_b = biases[perm]
    offsets = unit_offsets(fpd)
    ranges = unit_ranges(args.shards, len(dilations))  # by kernel up to 84 shards, by unit past

    def run_aeon() -> np.ndarray:
        out = mr.transform(x3)
        set_num_threads(1)  # aeon restores its previous setting; keep ours
        return out

    def run_ours() -> np.ndarray:
        return transform(x, dilations, fpd, ours_b, 0, 84)

    def run_shards() -> list[np.ndarray]:
        return [
            transform_units(x, dilations, fpd, ours_b[offsets[a] : offsets[b]], a, b) for a, b in ranges
        ]

    # warm up (compile or load from cache) and check that both compute the same features
    theirs = run_aeon()
    ours = run_ours()
    if not np.array_equal(ours, theirs[:, perm]):
        raise SystemExit("features differ from aeon's: the benchmark compares different work")
    if not np.array_equal(np.concatenate(run_shards(), axis=1), ours):
        raise SystemExit("shard transforms do not concatenate to the full transform")

    n = len(x)
    print(f"dataset {args.dataset}: {n} series of length {x.shape[1]}, {ours.shape[1]} features, "
          f"{len(dilations)} dilations, numba threads {get_num_threads()}")
    rates = _best_rates({"aeon": run_aeon, "ours": run_ours, "shards": run_shards}, n, args.repeats)
    aeon_rate, ours_rate, shard_rate = rates["aeon"], rates["ours"], rates["shards"]
    print(f"aeon MiniRocket (n_jobs=1):        {aeon_rate:10.1f} series/s (CPU)")
    print(f"ours, one shard (84 kernels):      {ours_rate:10.1f} series/s (CPU)")
    print(f"ours, {args.shards} shards in sequence:       {shard_rate:10.1f} series/s (CPU)")
    print(f"ratio: {ours_rate / aeon_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
