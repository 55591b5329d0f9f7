"""A validated run: what the engine runs and what each device gets "flashed" with.

Built by :func:`coordinator.service.run_setup.build_setup` (datasets, validation);
:meth:`RunSetup.shard` is what device ``d`` receives in WELCOME at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protocol.air.loss import LossModel
from protocol.air.topology import Topology
from protocol.config.model import bias_fit_rows, fit_dilations, shard_fit_series_units
from protocol.config.run import RunConfig
from protocol.stream.modes import units_held
from protocol.stream.schedule import Stream, contiguous_split


@dataclass
class RunSetup:
    """A validated run: config, data (int8), topology, loss model, stream."""

    config: RunConfig
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_labels: list[str]
    topology: Topology
    loss: LossModel
    protocol: str
    stream: Stream

    def shard(self, device: int) -> dict[str, Any]:
        """The data "flashed" to ``device``: its samples and the series its biases need."""
        n = self.config.n_devices
        a, b = contiguous_split(len(self.y_train), n)[device]
        c, d = contiguous_split(len(self.y_test), n)[device]
        dilations, _ = fit_dilations(self.config.series_length, self.config.model)
        rows = bias_fit_rows(len(self.y_train), len(dilations), self.config.model)
        u0, u1 = units_held(self.config, device)  # all 84 x D in data-parallel mode
        indices, local_rows = shard_fit_series_units(rows, u0, u1)
        return {
            "x_train": self.x_train[a:b],
            "y_train": self.y_train[a:b].astype(np.int16),
            "train_start": np.asarray(a, dtype=np.int64),
            "x_test": self.x_test[c:d],
            "y_test": self.y_test[c:d].astype(np.int16),
            "test_start": np.asarray(c, dtype=np.int64),
            "fit_series": self.x_train[indices],
            "fit_rows": local_rows,
        }
