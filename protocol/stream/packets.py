"""What travels in a round: packet sizes, data-parallel syncs and a round's packet layout.

Pure and deterministic; :mod:`protocol.stream.layout` decides which round carries what.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DP_MAX_PACKETS_PER_ROUND",
    "PACKET_PAYLOAD_BYTES",
    "PRIVATE_SERIES_HEADER_BYTES",
    "SERIES_HEADER_BYTES",
    "RoundPackets",
    "Sync",
    "packets_for",
]

#: Bytes of application payload per radio packet (the paper splits messages into 100 B).
PACKET_PAYLOAD_BYTES = 100
#: Bytes that travel with a series besides the samples: label (1 B) and train/eval flag (1 B).
SERIES_HEADER_BYTES = 2
#: Private labels: only the train/eval flag travels with a series.
PRIVATE_SERIES_HEADER_BYTES = 1
#: Data-parallel: most packets in one round, the initiator's packet included (Mixer's
#: generation size; a round of G = 64 has max(3G, 150) = 192 slots).
DP_MAX_PACKETS_PER_ROUND = 64


def packets_for(n_bytes: int) -> int:
    """Radio packets needed for a message of ``n_bytes`` (100-byte packets, at least one)."""
    return max(1, math.ceil(n_bytes / PACKET_PAYLOAD_BYTES))


@dataclass(frozen=True)
class Sync:
    """Data-parallel: one all-to-all exchange of a message from every device.

    Before it, every device processes its own items of ``[local_from, local_to)``
    (calibration: feature statistics; training: the gradient of a batch; evaluation items
    of a preceding pass are scored locally). ``kind`` is ``KIND_CALIB`` (the message is the
    device's feature statistics) or ``KIND_TRAIN`` (its gradient sum; every device then
    steps). Each device's message is ``k = packets_per_device`` packets; rounds
    ``[first_round, stop_round)`` carry them in order, the same slice of every device's
    message per round (:meth:`round_packet_range`).
    """

    index: int
    kind: int
    local_from: int
    local_to: int
    message_bytes: int
    packets_per_device: int
    first_round: int
    n_rounds: int
    n_devices: int

    @property
    def stop_round(self) -> int:
        return self.first_round + self.n_rounds

    def round_packet_range(self, round_no: int) -> tuple[int, int]:
        """The range of every device's packets that round ``round_no`` of the sync carries
        (:func:`~protocol.stream.schedule.contiguous_split` of ``packets_per_device`` over
        the sync's rounds)."""
        j = round_no - self.first_round
        if not 0 <= j < self.n_rounds:
            raise IndexError(f"round {round_no} is not in sync {self.index}")
        base, extra = divmod(self.packets_per_device, self.n_rounds)
        lo = j * base + min(j, extra)
        return lo, lo + base + (1 if j < extra else 0)


@dataclass(frozen=True)
class RoundPackets:
    """The packets of one round: packet 0 is the initiator's, then the series, then logits,
    then (private labels) the owner's ``g``; or (data-parallel) the sync's packets.

    ``source[g]`` is the device that originates packet ``g``; ``series_packets``,
    ``logits_packets``, ``grad_packets`` and ``sync_packets`` give the packet indices of each
    message so a receiver's decoded mask tells what it got: a message is delivered only if
    all its packets are decoded. ``kind[g]`` is the ``KIND_*`` of the item (or sync) packet
    ``g`` carries (the initiator's packet takes the round's leading kind; -1: none).
    """

    source: np.ndarray  # int16 [G]
    series_packets: tuple[int, ...]
    logits_packets: tuple[tuple[int, ...], ...]  # per device; empty tuple if no logits
    grad_packets: tuple[int, ...] = ()
    sync_packets: tuple[tuple[int, ...], ...] = ()  # per device; this round's part of its message
    kind: np.ndarray | None = None  # int8 [G]

    @property
    def n_packets(self) -> int:
        return int(self.source.shape[0])
