"""What went over the air, split by what it was for: calibration, training, evaluation.

The air (:class:`coordinator.engine.medium.Air`) adds every resolved round here. A round's packets
each carry a payload of some kind (``RoundPackets.kind``: the series, partial logits or
``g`` of a calibration / training / evaluation item, or a data-parallel sync); the round's
rounds, slots, latency, bytes on air and per-device energy are split over the kinds in
proportion to its packets (the initiator's packet counts for the round's leading kind).
Per training sample figures (:meth:`Traffic.per_train_sample`) divide the training share by
the training samples of the run, so the three modes compare like for like.

*Bytes on air* are what every radio transmitted, relays included: each transmission slot
of a node sends one frame of ``BLE PHY overhead + PHY payload`` bytes (Mixer: header, coding
vectors and 100 B of payload; Glossy: header and 100 B). *Payload bytes* are the round's
distinct packets times 100 B.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocol.air import timing
from protocol.stream.schedule import PACKET_PAYLOAD_BYTES

#: Buckets of :class:`Traffic` (index = ``KIND_*`` code; the last: rounds that carry nothing).
KIND_BUCKETS = ("calib", "train", "eval", "none")
_PHY = "2M"


def frame_bytes(air_s: float, phy: str = _PHY) -> int:
    """Bytes of one frame on air from its air time (the BLE PHY sends ``BYTE_TIME_S`` per byte)."""
    return int(round(air_s / timing.BYTE_TIME_S[phy]))


class Traffic:
    """Counters per kind bucket (floats: rounds are split by packet share)."""

    def __init__(self, n_devices: int) -> None:
        k = len(KIND_BUCKETS)
        self.n_devices = n_devices
        self.rounds = np.zeros(k)
        self.slots = np.zeros(k)
        self.latency_s = np.zeros(k)
        self.packets = np.zeros(k)
        self.payload_bytes = np.zeros(k)
        self.bytes_on_air = np.zeros(k)
        self.energy_mj = np.zeros((k, n_devices))

    @staticmethod
    def shares(kinds: np.ndarray) -> np.ndarray:
        """float [buckets]: fraction of a round's packets of each kind."""
        codes = np.where(kinds < 0, len(KIND_BUCKETS) - 1, kinds).astype(np.int64)
        counts = np.bincount(codes, minlength=len(KIND_BUCKETS)).astype(np.float64)
        return np.asarray(counts / max(1.0, float(counts.sum())), dtype=np.float64)

    def add_rounds(self, kinds: list[np.ndarray], n_slots: np.ndarray, latency_s: np.ndarray,
                   tx_frames: np.ndarray, frame_size_bytes: np.ndarray, energy_mj: np.ndarray) -> None:
        """Add R consecutive rounds, bitwise as R calls of :meth:`add` in order.

        ``kinds``: R int8 arrays [G_r]; ``n_slots``, ``tx_frames``, ``frame_size_bytes``: int
        [R]; ``latency_s``: float [R]; ``energy_mj``: float [R, N]. The running sums are
        ``np.add.accumulate`` over the rounds, which adds row after row as ``+=`` did.
        """
        share = np.stack([self.shares(k) for k in kinds])  # [R, buckets]
        packets = np.array([k.shape[0] for k in kinds], dtype=np.int64)[:, None]
        on_air = (tx_frames * frame_size_bytes).astype(np.float64)[:, None]

        def add(total: np.ndarray, rows: np.ndarray) -> None:
            total[...] = np.add.accumulate(np.concatenate([total[None], rows]), axis=0)[-1]

        add(self.rounds, share)
        add(self.slots, share * n_slots[:, None])
        add(self.latency_s, share * latency_s[:, None])
        add(self.packets, share * packets)
        add(self.payload_bytes, share * packets * PACKET_PAYLOAD_BYTES)
        add(self.bytes_on_air, share * on_air)
        add(self.energy_mj, share[:, :, None] * np.asarray(energy_mj, dtype=np.float64)[:, None, :])

    def as_dict(self) -> dict[str, Any]:
        """``{bucket: {rounds, slots, latency_s, packets, payload_bytes, bytes_on_air,
        energy_mj_per_device}}`` plus ``total`` (mean energy over devices)."""
        out: dict[str, Any] = {}
        for i, name in enumerate(KIND_BUCKETS):
            out[name] = self._bucket(i)
        out["total"] = {
            "rounds": float(self.rounds.sum()),
            "slots": float(self.slots.sum()),
            "latency_s": float(self.latency_s.sum()),
            "packets": float(self.packets.sum()),
            "payload_bytes": float(self.payload_bytes.sum()),
            "bytes_on_air": float(self.bytes_on_air.sum()),
            "energy_mj_per_device": float(self.energy_mj.sum(axis=0).mean()) if self.n_devices else 0.0,
        }
        return out

    def _bucket(self, i: int) -> dict[str, float]:
        return {
            "rounds": float(self.rounds[i]),
            "slots": float(self.slots[i]),
            "latency_s": float(self.latency_s[i]),
            "packets": float(self.packets[i]),
            "payload_bytes": float(self.payload_bytes[i]),
            "bytes_on_air": float(self.bytes_on_air[i]),
            "energy_mj_per_device": float(self.energy_mj[i].mean()) if self.n_devices else 0.0,
        }

    def per_train_sample(self, train_samples: int) -> dict[str, float | None]:
        """The training share divided by the run's training samples (None without any)."""
        keys = ("bytes_on_air", "payload_bytes", "rounds", "slots", "latency_s",
                "energy_mj_per_device")
        if train_samples <= 0:
            return {k: None for k in keys}
        train = self._bucket(KIND_BUCKETS.index("train"))
        return {k: train[k] / train_samples for k in keys}
