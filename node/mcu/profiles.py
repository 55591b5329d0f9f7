"""Device profiles: how a device is priced (cycles, RAM), timed and radioed (``--profile``).

* ``tuned`` (the default, today's behaviour): our optimized kernels
  (:mod:`node.mcu.cycles`), our RAM ledger (:mod:`protocol.config.ram_ledger`), the compute window =
  the slowest device's modeled work, our message sizes (L + 2, 4 C), 0 dBm layouts.
* ``firmware``: the official RockNet firmware (HEAD b5d2abc) as built: the op count of its
  kernels at -O1 (:mod:`node.mcu.firmware_cycles`), its static buffers
  (:mod:`node.mcu.firmware_memory`), 8-bit Adam, its message sizes, G and slot length
  (:mod:`protocol.air.radio.firmware_round`), a fixed compute window sized as its code
  generator's rule ``340 C / N + 20`` ms (``GenerateCodeDistributedRocket.py``
  ``generate_timing_configuration``), and +8 dBm (the testbed's setting, paper §V).

A profile is a frozen record; :data:`PROFILES` holds the two. docs/fidelity.md compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.mcu import cycles, firmware_cycles, firmware_memory
from protocol.config import ram_ledger as memory
from protocol.air import timing
from protocol.config.model import ModelConfig


@dataclass(frozen=True)
class DeviceProfile:
    """How devices are priced and timed; ``window_*`` are 0 for a window = modeled compute."""

    name: str
    optimizer: str | None  # forced optimizer (None: the model's own)
    window_ms_per_class_per_device: float  # the firmware's sizing rule: a C / N + b ms
    window_ms_offset: float
    tx_power_dbm: float
    firmware_messages: bool

    @property
    def fixed_window(self) -> bool:
        return self.window_ms_per_class_per_device > 0 or self.window_ms_offset > 0


TUNED = DeviceProfile("tuned", None, 0.0, 0.0, 0.0, False)
FIRMWARE = DeviceProfile("firmware", "adam8bit", timing.WINDOW_MS_PER_CLASS_PER_DEVICE, timing.WINDOW_MS_OFFSET,
                         8.0, True)
PROFILES = {p.name: p for p in (TUNED, FIRMWARE)}


def get_profile(name: str) -> DeviceProfile:
    """The profile called ``name``; a clear error that lists the choices otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown device profile {name!r}: use --profile {' or '.join(PROFILES)}") from None


def sample_cycles(profile: DeviceProfile, cfg: ModelConfig, n_devices: int, series_length: int,
                  n_classes: int, device: int = 0) -> dict[str, float]:
    """Cycles of one training sample on ``device`` by phase, as ``profile`` prices them."""
    if profile.name == FIRMWARE.name:
        return firmware_cycles.cycles_per_sample(cfg, n_devices, series_length, n_classes, device)
    return cycles.cycles_per_sample(cfg, n_devices, series_length, n_classes, device)


def step_s(profile: DeviceProfile, cfg: ModelConfig, n_devices: int, series_length: int,
           n_classes: int, device: int = 0) -> float:
    """Seconds of one optimizer step on ``device``."""
    if profile.name == FIRMWARE.name:
        return firmware_cycles.step_cycles(cfg, n_devices, series_length, n_classes, device) / cycles.CPU_HZ
    return cycles.step_seconds(cfg, n_devices, series_length, n_classes, device)


def window_s(profile: DeviceProfile, n_devices: int, n_classes: int, modeled_s: float) -> float:
    """The round's compute window (s): the firmware's fixed window, never shorter than the
    modeled compute (a real device would overrun it: our own choice), else ``modeled_s``."""
    if not profile.fixed_window:
        return modeled_s
    return timing.compute_window_s(n_devices, n_classes, modeled_s, profile.window_ms_per_class_per_device,
                                   profile.window_ms_offset)


def ram_bytes(profile: DeviceProfile, cfg: ModelConfig, n_devices: int, series_length: int,
              n_classes: int, n_train: int, n_eval: int) -> int:
    """RAM of the largest device (device 0) under ``profile``."""
    if profile.name == FIRMWARE.name:
        return firmware_memory.firmware_ledger(cfg, n_devices, series_length, n_classes, n_train, n_eval).total_bytes
    return memory.ledger(cfg, n_devices, series_length, n_classes).total_bytes
