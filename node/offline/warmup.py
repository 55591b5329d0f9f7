"""Compile (and cache) the node's numba kernels once, before many nodes start at the same time.

``python -m node.offline.warmup``: run by the launcher before it starts N nodes, by the test session
fixture and at image build time. N processes compiling at once on 2 cores takes minutes; with
a warm cache each node starts in about a second.
"""

from __future__ import annotations

import time

import numpy as np


def warm_up() -> float:
    """Run every node kernel on a tiny problem; returns the seconds it took."""
    from protocol.config.model import ModelConfig
    from protocol.config.run import RunConfig
    from protocol.stream.schedule import ScheduleConfig
    from node.device.rocknet import Device, DeviceData

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    length, n, classes = 40, 4, 2
    x = rng.integers(-100, 100, size=(n, length)).astype(np.int8)
    y = np.array([0, 1, 0, 1])
    for optimizer in ("adam", "adam8bit"):
        model = ModelConfig(num_features=840, epochs=1, batch_size=2, optimizer=optimizer)
        from protocol.config.model import bias_fit_rows, fit_dilations

        dilations, _ = fit_dilations(length, model)
        rows = bias_fit_rows(n, len(dilations), model)
        unique, fit_rows = np.unique(rows, return_inverse=True)
        cfg = RunConfig(
            dataset="warmup", n_devices=1, n_classes=classes, series_length=length, model=model,
            schedule=ScheduleConfig(n_train=n, n_test=n, n_devices=1, epochs=1, batch_size=2),
        )
        data = DeviceData(
            x_train=x, y_train=y, train_start=0, x_test=x, y_test=y, test_start=0,
            fit_series=x[unique], fit_rows=fit_rows.reshape(rows.shape).astype(np.int32),
        )
        device = Device(device=0, config=cfg, data=data)
        stream = device.stream
        for a, b in stream.batches:
            items, series, labels = device.series_payload(a, b)
            device.receive_series(a, b, items, series, labels)
            if stream.needs_logits(a):
                l_items, logits = device.logits_payload(a, b)
                mask = np.ones((len(l_items), 1), dtype=bool)
                device.receive_logits(l_items, logits[:, None, :], mask)
    # The ridge head's own kernels (node/ml/ridge.py): the Cholesky solve and the weights.
    from node.ml.ridge import accumulate_dual_weights, solve_ridge

    feats = rng.standard_normal((n, 8)).astype(np.float32)
    solution = solve_ridge(feats @ feats.T, y, classes)
    accumulate_dual_weights(np.zeros((classes, 8), np.float32), solution.dual.astype(np.float32), feats)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"numba kernels warm ({warm_up():.1f} s)")
