"""Which device class runs a run's mode (docs/modes.md)."""

from __future__ import annotations

from typing import Union

from node.device.data_parallel import DataParallelDevice
from node.device.rocknet import Device, DeviceData
from node.device.private_labels import PrivateLabelsDevice
from protocol.stream.modes import MODE_DATA_PARALLEL, MODE_PRIVATE_LABELS, check_mode
from protocol.config.run import RunConfig

AnyDevice = Union[Device, DataParallelDevice]


def make_device(device: int, config: RunConfig, data: DeviceData) -> AnyDevice:
    """The device state machine of ``config.mode`` (``ValueError`` for an unknown mode;
    :class:`node.mcu.memory.RamBudgetExceeded` if it does not fit the RAM budget)."""
    mode = check_mode(config.mode)
    if mode == MODE_PRIVATE_LABELS:
        return PrivateLabelsDevice(device=device, config=config, data=data)
    if mode == MODE_DATA_PARALLEL:
        return DataParallelDevice(device=device, config=config, data=data)
    return Device(device=device, config=config, data=data)
