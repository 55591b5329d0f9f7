"""Repeat one GunPoint run over seeds (in parallel, as the cores allow) and print mean ± std
of the test accuracy (``rocknet run --seeds K`` does the same from the command line).

    PYTHONPATH=. python examples/seed_sweep.py [OUT_DIR] [SEEDS] [EPOCHS]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from coordinator.api import run_seeds


def main(out: Path, seeds: int, epochs: int) -> None:
    results = run_seeds(seeds, dataset="GunPoint", nodes=5, epochs=epochs, num_features=1000,
                        split="iid", backend="inprocess", reference=False, out=out)  # out/seed<S>
    accs = [r.test_accuracy or 0.0 for r in results]
    for seed, acc in enumerate(accs):
        print(f"seed {seed}: accuracy {acc:.4f}")
    print(f"accuracy over {seeds} seeds: {np.mean(accs):.4f} ± {np.std(accs):.4f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "runs/seeds"), int(args[1]) if len(args) > 1 else 3,
         int(args[2]) if len(args) > 2 else 3)
