"""The official firmware's Mixer round: message sizes, generation size G, slot length.

From ``GenerateCodeDistributedRocket.py`` (RockNet, HEAD b5d2abc), facts re-derived here in
our own code:

* messages (``generate_rocket_mixer_config``): a 2-byte header each; the int8 series is
  ``2 + L + 1 + 1`` = L + 4 B (label and flag), partial logits ``2 + 4 C`` B;
* G (``calculate_num_messages``): 1 initiator packet + sum of ceil(message / payload);
* slots (``calculate_num_rounds``): max(3 G, 150);
* the payload (``generate_timing_configuration``): the size in 100..199 B with the
  shortest round (first one on ties);
* the slot (``calculate_slot_time``): air time of a PHY payload ``4 + 2 ceil(G/8) +
  payload`` on BLE 2M (``(11 + PHY) x 4 µs``) + RX-to-grid offset 40 µs + two RX windows +
  ISR latency buffer 20 µs + 25 µs, times 1.0003, as a fixed point in the slot length (the
  drift tolerance depends on it), rounded up to a µs, + 10 µs of safety gap.

OSULeaf at N = 20 (L 427, C 6): G = 26, slot 689 µs; FaceAll (L 131, C 14): G = 23, 681 µs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

#: Message header bytes (``header_message_size``).
HEADER_BYTES = 2
#: Ticks per µs of the firmware's hybrid clock (16 MHz).
TICKS_PER_US = 16


def series_message_bytes(series_length: int) -> int:
    """The firmware's series message: header 2 + L int8 + label 1 + flag 1 = L + 4 B."""
    return HEADER_BYTES + series_length + 2


def logits_message_bytes(n_classes: int) -> int:
    """The firmware's partial-logits message: header 2 + 4 C B."""
    return HEADER_BYTES + 4 * n_classes


def generation_size(messages: list[int], payload_bytes: int) -> int:
    """G = 1 + sum ceil(message / payload) (the initiator's packet first)."""
    if payload_bytes < 1:
        raise ValueError(f"payload_bytes must be >= 1, got {payload_bytes}")
    return 1 + sum(math.ceil(m / payload_bytes) for m in messages)


def slot_us(generation: int, payload_bytes: int) -> int:
    """The firmware's slot length (µs) for G packets of ``payload_bytes`` (module docstring)."""
    phy = 4 + 2 * math.ceil(generation / 8) + payload_bytes
    air = (2 + 4 + 2 + phy + 3) * 4 * TICKS_PER_US
    jitter = 4 * TICKS_PER_US
    slot = 80_000.0
    for _ in range(200):  # converges in a handful of steps (drift tolerance ~ slot / 1000)
        drift = min(2500, max(math.ceil(slot / 1000), 1))
        win_min = 2 * (3 * drift + 2 * jitter + 5 * TICKS_PER_US)
        win_max = min(win_min + 20 * (3 * drift) / 2, (slot - air - 40 * 16 - 20 * 16) / 2)
        new = (air + 40 * 16 + 2 * win_max + 20 * 16 + 25 * 16) * 1.0003
        if abs(new - slot) < 1e-9:
            break
        slot = new
    return math.ceil(slot / TICKS_PER_US) + 10


@dataclass(frozen=True)
class FirmwareRound:
    """One firmware Mixer round of the RockNet stream (series + every device's logits)."""

    series_message_bytes: int
    logits_message_bytes: int
    payload_bytes: int
    generation_size: int
    slots: int
    slot_s: float

    @property
    def phy_payload_bytes(self) -> int:
        return 4 + 2 * math.ceil(self.generation_size / 8) + self.payload_bytes

    @property
    def radio_s(self) -> float:
        """The Mixer part of a round: slots x slot length (s)."""
        return self.slots * self.slot_s


@functools.lru_cache(maxsize=64)  # pure, and asked for every round of a firmware-profile run
def firmware_round(n_devices: int, series_length: int, n_classes: int) -> FirmwareRound:
    """The round the firmware's generator configures for N devices, L and C."""
    if n_devices < 1 or series_length < 1 or n_classes < 1:
        raise ValueError("need n_devices, series_length and n_classes >= 1")
    msgs = [series_message_bytes(series_length)] + [logits_message_bytes(n_classes)] * n_devices
    best: tuple[float, int, int, int] | None = None
    for size in range(100, 200):
        g = generation_size(msgs, size)
        slots = max(3 * g, 150)
        s_us = slot_us(g, size)
        if best is None or slots * s_us < best[0]:
            best = (slots * s_us, size, g, s_us)
    assert best is not None
    _, size, g, s_us = best
    return FirmwareRound(msgs[0], msgs[1], size, g, max(3 * g, 150), s_us * 1e-6)
