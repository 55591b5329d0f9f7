"""``rocknet model``: the device and round model per N without training (docs/fidelity.md).

The model itself is node-side (:mod:`node.mcu.plan`; ``coordinator`` never imports ``node``).
Here we only turn a dataset that the planner does not know into its shape (``--data-dir``
or aeon's bundled files) and run ``python -m node.mcu.plan`` in this process's place.
"""

from __future__ import annotations

import os
import sys

#: The datasets node/mcu/plan.py knows by name (keep in step with its KNOWN_SHAPES).
BUILT_IN = ("OSULeaf", "ElectricDevices", "FaceAll", "GunPoint")


def plan_argv(argv: list[str]) -> list[str]:
    """The planner's arguments: ``--data-dir D`` and an unknown ``--dataset`` become ``--shape``."""
    args = list(argv)
    data_dir = None
    if "--data-dir" in args:
        i = args.index("--data-dir")
        if i + 1 >= len(args):
            raise ValueError("--data-dir needs a directory")
        data_dir = args[i + 1]
        del args[i:i + 2]
    if "--dataset" in args and "--shape" not in args and "-h" not in args and "--help" not in args:
        i = args.index("--dataset")
        name = args[i + 1] if i + 1 < len(args) else ""
        if name not in BUILT_IN:
            from coordinator.service.datasets import load_dataset

            ds = load_dataset(name, data_dir)
            shape = (ds.x_train.shape[1], len(ds.class_labels), ds.x_train.shape[0], min(200, ds.x_test.shape[0]))
            args += ["--shape", ",".join(str(int(v)) for v in shape)]
    return args


def main(argv: list[str]) -> int:
    """Replace this process with the planner (never returns unless the arguments are bad)."""
    try:
        args = plan_argv(argv)
    except ValueError as exc:
        print(f"rocknet model: {exc}", file=sys.stderr)
        return 2
    os.execv(sys.executable, [sys.executable, "-m", "node.mcu.plan", *args])
    return 0  # pragma: no cover - execv does not return
