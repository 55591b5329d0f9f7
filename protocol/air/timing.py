"""Radio timing of a round: BLE PHY air time, Mixer slot length, round length.

BLE frame on air = preamble + access address (4 B) + PDU header (2 B) + PHY payload + CRC
(3 B). The preamble is 1 B on the 1M PHY and 2 B on the 2M PHY, so the overhead is 10 B
(1M, 8 µs per byte) or 11 B (2M, 4 µs per byte).

Mixer's PHY payload carries a 4-byte header, the coding vector and the payload; the coding
vector and an info vector take ``ceil(G / 8)`` bytes each: ``4 + 2 * ceil(G / 8) + payload``.

The slot is the air time plus a fixed guard for radio turnaround and the GF(2) processing
between packets. RockNet's firmware uses 681 µs slots for G = 23 with 100-byte payloads on
BLE 2M, i.e. 484 µs air time + ``SLOT_GUARD_S = 197 µs``; we keep that guard for every G.
"""

from __future__ import annotations

import math

#: Bytes per BLE frame besides the PHY payload (preamble + access address + header + CRC).
PHY_OVERHEAD_BYTES = {"1M": 10, "2M": 11}
#: Air time per byte (s).
BYTE_TIME_S = {"1M": 8e-6, "2M": 4e-6}
#: Turnaround + processing guard per slot (s): 681 µs - 484 µs air time at G = 23 on 2M.
SLOT_GUARD_S = 197e-6
#: Mixer header bytes in the PHY payload (besides coding and info vectors).
MIXER_HEADER_BYTES = 4
#: Minimum Mixer round length in slots.
MIN_MIXER_SLOTS = 150


def _check_phy(phy: str) -> None:
    if phy not in BYTE_TIME_S:
        raise ValueError(f"unknown PHY {phy!r}; use '1M' or '2M'")


def phy_payload_bytes(n_packets: int, payload_bytes: int = 100) -> int:
    """Mixer PHY payload for a generation of ``n_packets`` (G): ``4 + 2*ceil(G/8) + payload``."""
    if n_packets < 1:
        raise ValueError(f"a round needs at least one packet, got G = {n_packets}")
    if payload_bytes < 0:
        raise ValueError(f"payload_bytes must be >= 0, got {payload_bytes}")
    return MIXER_HEADER_BYTES + 2 * math.ceil(n_packets / 8) + payload_bytes


def air_time_s(phy_bytes: int, phy: str = "2M") -> float:
    """Seconds on air for a frame with ``phy_bytes`` of PHY payload."""
    _check_phy(phy)
    if phy_bytes < 0:
        raise ValueError(f"phy_bytes must be >= 0, got {phy_bytes}")
    return (PHY_OVERHEAD_BYTES[phy] + phy_bytes) * BYTE_TIME_S[phy]


def slot_s(n_packets: int, payload_bytes: int = 100, phy: str = "2M",
           guard_s: float = SLOT_GUARD_S) -> float:
    """Slot length (s): air time of one Mixer packet + ``guard_s`` (681 µs for G = 23, 2M)."""
    return air_time_s(phy_payload_bytes(n_packets, payload_bytes), phy) + guard_s


def mixer_slots(n_packets: int) -> int:
    """Slots in a Mixer round: ``max(3 G, 150)``."""
    if n_packets < 1:
        raise ValueError(f"a round needs at least one packet, got G = {n_packets}")
    return max(3 * n_packets, MIN_MIXER_SLOTS)


def glossy_flood_slots(diameter: int, n_tx: int = 3) -> int:
    """Slots per Glossy flood: ``diameter + 2 * n_tx`` (see protocol/air/radio/glossy.py)."""
    if diameter < 0 or n_tx < 1:
        raise ValueError(f"need diameter >= 0 and n_tx >= 1, got {diameter}, {n_tx}")
    return max(1, diameter + 2 * n_tx)


def round_s(compute_s: float, n_slots: int, slot_s: float) -> float:
    """Round length (s): compute window + ``n_slots`` x ``slot_s``."""
    if compute_s < 0 or n_slots < 0 or slot_s <= 0:
        raise ValueError("need compute_s >= 0, n_slots >= 0 and slot_s > 0")
    return compute_s + n_slots * slot_s


#: The firmware's compute-window sizing rule, ms: ``a C / N + b`` (GenerateCodeDistributedRocket.py,
#: generate_timing_configuration: ``int(340 * num_classes / num_devices) + 20``; earlier 280).
WINDOW_MS_PER_CLASS_PER_DEVICE = 340.0
WINDOW_MS_OFFSET = 20.0


def compute_window_s(n_devices: int, n_classes: int, modeled_s: float = 0.0,
                     per_class_ms: float = WINDOW_MS_PER_CLASS_PER_DEVICE,
                     offset_ms: float = WINDOW_MS_OFFSET) -> float:
    """The firmware's fixed compute window (s) of a round (``ROUND_LENGTH_MS`` minus the Mixer
    part), never shorter than ``modeled_s``: a real device would overrun it (our own choice)."""
    if n_devices < 1 or n_classes < 1 or modeled_s < 0:
        raise ValueError("need n_devices >= 1, n_classes >= 1 and modeled_s >= 0")
    return max((per_class_ms * n_classes / n_devices + offset_ms) / 1e3, modeled_s)
