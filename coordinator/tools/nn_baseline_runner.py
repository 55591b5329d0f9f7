"""Training the on-device NN baseline on a dataset, as the devices would see it.

The baseline itself (a tanh MLP trained on one device, its RAM ledger and MCU time model)
lives in :mod:`node.offline.nn_baseline`; the coordinator never imports ``node``, so it runs it
as a subprocess (``python -m node.offline.nn_baseline``) on the same int8 data the devices hold
(:func:`coordinator.service.datasets.quantize_int8`) and reads its JSON. Used by
``rocknet sweep`` (a reference line) and ``rocknet baseline`` (the comparison).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.service.datasets import load_dataset, quantize_int8


class BaselineError(RuntimeError):
    """The baseline subprocess failed; the message carries its error output."""


def run_nn_baseline(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Train the baseline in ``python -m node.offline.nn_baseline`` on int8 series; returns its result.

    ``epochs`` / ``batch_size`` None: the baseline's defaults (1000 epochs, batches of 16).
    """
    from coordinator.backends.processes import node_env

    with tempfile.TemporaryDirectory(prefix="rocknet-nn-") as tmp:
        npz = Path(tmp) / "data.npz"
        out = Path(tmp) / "result.json"
        np.savez(npz, x_train=np.asarray(x_train, np.int8), y_train=np.asarray(y_train, np.int64),
                 x_test=np.asarray(x_test, np.int8), y_test=np.asarray(y_test, np.int64),
                 n_classes=np.asarray(n_classes))
        cmd = [sys.executable, "-m", "node.offline.nn_baseline", "--npz", str(npz), "--out", str(out),
               "--seed", str(seed)]
        if epochs is not None:
            cmd += ["--epochs", str(epochs)]
        if batch_size is not None:
            cmd += ["--batch-size", str(batch_size)]
        proc = subprocess.run(cmd, env=node_env(), capture_output=True, text=True, timeout=timeout_s,
                              check=False)  # its exit status is read below, with its stderr
        if proc.returncode != 0:
            raise BaselineError(f"the NN baseline failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return json.loads(out.read_text())


def nn_baseline_for_dataset(
    dataset: str,
    data_dir: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Load ``dataset`` as the testbed does (int8), train the baseline; adds ``"dataset"``."""
    data = load_dataset(dataset, data_dir)
    x_train, x_test = quantize_int8(data.x_train, data.x_test)
    result = run_nn_baseline(x_train, data.y_train, x_test, data.y_test, data.n_classes,
                             epochs=epochs, batch_size=batch_size, seed=seed)
    result["dataset"] = data.name
    return result
