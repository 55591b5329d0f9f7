"""A jamming scenario from Python: devices 0 and 1 deaf for 30 rounds (examples/jamming.toml
holds the events), compared with the same run without it.

    PYTHONPATH=. python examples/jamming.py [OUT_DIR] [EPOCHS]
"""

from __future__ import annotations

import sys
from pathlib import Path

from coordinator.api import run_experiment

EVENTS = Path(__file__).with_name("jamming.toml")


def main(out: Path, epochs: int) -> None:
    common = dict(dataset="GunPoint", nodes=5, epochs=epochs, num_features=1000,
                  backend="inprocess", reference=False)
    clean = run_experiment(out=out / "clean", **common)
    jammed = run_experiment(out=out / "jammed", scenario=EVENTS, **common)
    for name, r in (("clean", clean), ("jammed", jammed)):
        print(f"{name:6s} accuracy {r.test_accuracy:.4f} packet loss {r.packet_loss_ratio:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/jamming"),
         int(sys.argv[2]) if len(sys.argv) > 2 else 2)
