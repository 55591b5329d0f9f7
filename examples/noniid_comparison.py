"""Compare data placements (IID vs non-IID) on GunPoint from Python.

    PYTHONPATH=. python examples/noniid_comparison.py [OUT_DIR] [EPOCHS]
"""

from __future__ import annotations

import sys
from pathlib import Path

from coordinator.api import run_experiment


def main(out: Path, epochs: int) -> None:
    for split in ("contiguous", "iid", "label-sorted", "dirichlet:0.3"):
        r = run_experiment(dataset="GunPoint", nodes=5, epochs=epochs, num_features=1000,
                           split=split, backend="inprocess", out=out / split)
        print(f"{split:14s} accuracy {r.test_accuracy:.4f} (centralized "
              f"{r.centralized_test_accuracy}) classes per device {r.label_histograms}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/noniid"),
         int(sys.argv[2]) if len(sys.argv) > 2 else 3)
