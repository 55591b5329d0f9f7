"""Per-node energy from radio slot counts and CPU time, nRF52840 constants at 3 V.

Energy (mJ) = voltage (V) x current (mA) x duration (s). What one slot costs:

* **TX slot**: RX/TX ramp-up (``ramp_ma`` for ``ramp_s``), TX for the air time, low power
  for the rest of the slot.
* **RX slot with a reception**: ramp-up, RX for the air time, low power for the rest.
* **RX slot without a reception, synchronized** (nothing decodable arrived in the RX window):
  ramp-up, RX timeout (``timeout_ma`` for ``timeout_s``), low power for the rest. Mixer opens
  its RX window around the expected frame start (``RX_TO_GRID_OFFSET`` 40 µs ramp + a window
  of ``RX_WINDOW_MIN``..``RX_WINDOW_MAX``, 30-53 µs for a 689-µs slot, ``mixer_transport_ble.c``)
  and turns the radio off when no frame starts in it; the 70 µs / 140 µs constants are the
  paper code's measured equivalents.
* **RX slot listened through** (``rx_listen_slots``, a subset of the listening slots without
  a reception: the node is not synchronized, before its first reception of the round or after
  a sync loss): Mixer's RESYNC state keeps the receiver on until a frame arrives, so RX
  current (``rx_ma``) for the whole slot, no ramp (the radio stays in RX from slot to slot).
* **off slot** (radio off: shut down, not alive, done): low power for the whole slot.

CPU time costs ``cpu_ma``; idle time (outside the radio and compute windows) ``low_power_ma``.
The constants are RockNet's (paper code); override any of them with ``EnergyConstants(...)``
or ``dataclasses.replace``. The ramp is charged for TX slots too (the nRF52840 ramps up
its radio for either direction).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class EnergyConstants:
    """Supply voltage and currents (mA) with their fixed durations (s)."""

    voltage_v: float = 3.0
    tx_ma: float = 13.63
    rx_ma: float = 6.4
    ramp_ma: float = 13.0
    ramp_s: float = 70e-6
    timeout_ma: float = 6.0
    timeout_s: float = 140e-6
    cpu_ma: float = 3.71
    low_power_ma: float = 0.205

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"EnergyConstants.{f.name} must be a finite number >= 0, got {v}")


DEFAULT_CONSTANTS = EnergyConstants()


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy in mJ by consumer (scalars or arrays, one entry per node)."""

    cpu_mj: np.ndarray | float
    tx_mj: np.ndarray | float
    rx_mj: np.ndarray | float
    low_power_mj: np.ndarray | float

    @property
    def total_mj(self) -> np.ndarray | float:
        return self.cpu_mj + self.tx_mj + self.rx_mj + self.low_power_mj

    def as_dict(self) -> dict[str, object]:
        def plain(x: np.ndarray | float) -> object:
            return x.tolist() if isinstance(x, np.ndarray) else float(x)

        return {"cpu_mj": plain(self.cpu_mj), "tx_mj": plain(self.tx_mj), "rx_mj": plain(self.rx_mj),
                "low_power_mj": plain(self.low_power_mj), "total_mj": plain(self.total_mj)}


def _arr(x: object) -> np.ndarray | float:
    a = np.asarray(x, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


def radio_energy_mj(tx_slots: object, rx_slots: object, off_slots: object,
                    slot_s: float | np.ndarray, air_s: float | np.ndarray,
                    consts: EnergyConstants = DEFAULT_CONSTANTS,
                    rx_ok_slots: object = None, rx_listen_slots: object = None) -> EnergyBreakdown:
    """Energy of the radio phase (cpu_mj = 0) from slot counts (scalars or per-node arrays).

    ``slot_s`` and ``air_s`` (seconds) are scalars, or arrays that broadcast against the
    counts (e.g. float [R, 1] for counts [R, N] of R rounds): every term is elementwise, so
    many rounds at once give bitwise what each round gives alone.

    ``rx_ok_slots`` (a subset of ``rx_slots``) are listening slots in which a packet
    arrived; ``None``: every listening slot received (an upper bound). ``rx_listen_slots``
    (a subset of the rest) were listened through unsynchronized (RX for the whole slot);
    ``None``: none. The remaining listening slots end in the RX timeout.
    """
    c = consts
    if np.any(np.asarray(air_s) < 0) or np.any(np.asarray(slot_s) <= 0):
        raise ValueError(f"need slot_s > 0 and air_s >= 0, got {slot_s}, {air_s}")
    if np.any(c.ramp_s + np.maximum(air_s, c.timeout_s) > np.asarray(slot_s) + 1e-15):
        raise ValueError(f"slot_s = {slot_s} s is shorter than ramp + air time / timeout")
    tx, rx, off = _arr(tx_slots), _arr(rx_slots), _arr(off_slots)
    ok = rx if rx_ok_slots is None else _arr(rx_ok_slots)
    if np.any(np.asarray(ok) > np.asarray(rx)):
        raise ValueError("rx_ok_slots must not exceed rx_slots")
    listen = 0.0 * rx if rx_listen_slots is None else _arr(rx_listen_slots)
    if np.any(np.asarray(listen) < 0) or np.any(np.asarray(ok) + np.asarray(listen) > np.asarray(rx)):
        raise ValueError("rx_listen_slots must be >= 0 and fit in rx_slots - rx_ok_slots")
    idle = rx - ok - listen
    v = c.voltage_v
    ramp_mj = v * c.ramp_ma * c.ramp_s
    tx_mj = tx * (ramp_mj + v * c.tx_ma * air_s)
    rx_mj = (ok * (ramp_mj + v * c.rx_ma * air_s) + idle * (ramp_mj + v * c.timeout_ma * c.timeout_s)
             + listen * (v * c.rx_ma * slot_s))
    lp = v * c.low_power_ma
    low_mj = lp * (tx * (slot_s - c.ramp_s - air_s) + ok * (slot_s - c.ramp_s - air_s)
                   + idle * (slot_s - c.ramp_s - c.timeout_s) + off * slot_s)
    return EnergyBreakdown(_arr(0.0 * tx), tx_mj, rx_mj, low_mj)


def node_energy_mj(tx_slots: object, rx_slots: object, off_slots: object,
                   slot_s: float | np.ndarray, air_s: float | np.ndarray, cpu_s: object = 0.0, idle_s: object = 0.0,
                   consts: EnergyConstants = DEFAULT_CONSTANTS,
                   rx_ok_slots: object = None, rx_listen_slots: object = None) -> EnergyBreakdown:
    """Radio energy plus ``cpu_s`` seconds of CPU and ``idle_s`` seconds in low power."""
    r = radio_energy_mj(tx_slots, rx_slots, off_slots, slot_s, air_s, consts, rx_ok_slots,
                        rx_listen_slots)
    cpu, idle = _arr(cpu_s), _arr(idle_s)
    if np.any(np.asarray(cpu) < 0) or np.any(np.asarray(idle) < 0):
        raise ValueError("cpu_s and idle_s must be >= 0")
    v = consts.voltage_v
    return EnergyBreakdown(v * consts.cpu_ma * cpu + 0.0 * r.tx_mj, r.tx_mj, r.rx_mj,
                           r.low_power_mj + v * consts.low_power_ma * idle)
