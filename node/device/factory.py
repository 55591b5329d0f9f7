"""Which device class runs a run's mode (docs/modes.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.device.base import DeviceBase, DeviceData
from node.device.data_parallel import DataParallelDevice
from node.device.private_labels import PrivateLabelsDevice
from node.device.ridge import RidgeDevice
from node.device.rocknet import Device
from protocol.config.run import RunConfig
from protocol.device import DeviceStateMachine
from protocol.stream.modes import TrainingMode, check_mode

__all__ = ["DEVICE_CLASSES", "AnyDevice", "make_device"]

#: The device class of every training mode.
DEVICE_CLASSES: dict[TrainingMode, type[DeviceBase]] = {
    TrainingMode.ROCKNET: Device,
    TrainingMode.PRIVATE_LABELS: PrivateLabelsDevice,
    TrainingMode.DATA_PARALLEL: DataParallelDevice,
}

#: Any mode's device, as :func:`make_device` returns it.
AnyDevice = DeviceBase


def make_device(device: int, config: RunConfig, data: DeviceData) -> DeviceBase:
    """The device state machine of ``config.mode`` (``ValueError`` for an unknown mode;
    :class:`protocol.config.ram_ledger.RamBudgetExceeded` if it does not fit the RAM budget).

    The ridge head (``config.model.head == "ridge"``) runs :class:`RidgeDevice`.

    Every class here satisfies :class:`protocol.device.DeviceStateMachine` (mypy checks it
    below), so callers outside ``node`` should hold it as that; the base type is returned
    because node code (checkpoints, tests) also reaches into the head and scaler.
    """
    mode = check_mode(config.mode)
    if config.model.head == "ridge":  # RunConfig checks that it is rocknet mode
        return RidgeDevice(device=device, config=config, data=data)
    return DEVICE_CLASSES[mode](device=device, config=config, data=data)


if TYPE_CHECKING:  # mypy proves that every mode's device satisfies the contract
    def _contract(rocknet: Device, private: PrivateLabelsDevice, data_parallel: DataParallelDevice,
                  ridge: RidgeDevice, any_mode: DeviceBase) -> tuple[DeviceStateMachine, ...]:
        return rocknet, private, data_parallel, ridge, any_mode
