"""The device contract: what a node agent and the in-process link drive, whatever the mode.

A device is a pure state machine: a ROUND in, the payload fields of its TX out; an RX (or
the silence of an exchange it missed) in, its model updated. No zmq, no ``node`` imports:
``node.device`` implements it (one class per :class:`~protocol.stream.training_mode.TrainingMode`),
the coordinator's links only see this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from protocol.config.run import RunConfig
from protocol.wire.frames import Round, Rx
from protocol.wire.stats import FinalMetrics, TxStats

__all__ = ["DeviceStateMachine", "RamLedger"]


class RamLedger(Protocol):
    """A device's MCU RAM account (``protocol.config.ram_ledger.Ledger``)."""

    @property
    def total_bytes(self) -> int: ...


@runtime_checkable
class DeviceStateMachine(Protocol):
    """One emulated device of a run (see the module docstring).

    Attributes: ``device`` (its id, 0-based), ``config`` (the run), ``steps_taken``
    (optimizer steps so far), ``processed_item`` (last stream item it is done with, -1:
    none), ``unit_start`` / ``unit_stop`` (the (kernel, dilation) units it computes,
    ``[start, stop)``, ``u = kernel * D + dilation_index``), ``kernel_start`` /
    ``kernel_stop`` (the MiniRocket kernels those units touch), ``n_features`` (its feature
    count F_i), ``ledger`` (its RAM account).
    """

    device: int
    config: RunConfig
    steps_taken: int
    processed_item: int
    unit_start: int
    unit_stop: int
    kernel_start: int
    kernel_stop: int
    n_features: int

    @property
    def ledger(self) -> RamLedger: ...

    def tx_payload(self, msg: Round) -> dict[str, np.ndarray]:
        """The TX fields (besides exchange, device and stats) this device sends for ``msg``."""
        ...

    def on_rx(self, msg: Round, rx: Rx) -> None:
        """Consume what the air delivered for the exchange of ``msg``."""
        ...

    def take_tx_stats(self) -> TxStats:
        """Stats for the next TX; resets the per-exchange counters."""
        ...

    def take_stats(self) -> dict[str, Any]:
        """:meth:`take_tx_stats` in its wire form (``Tx.stats``)."""
        ...

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W float32[C, F_i], b float32[C] or empty)``: the head this device holds."""
        ...

    def final_record(self) -> FinalMetrics:
        """The run's per-pass metrics and steps, for FINAL."""
        ...

    def final_metrics(self) -> dict[str, Any]:
        """:meth:`final_record` in its wire form (``Final.stats``)."""
        ...
