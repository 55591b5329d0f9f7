"""Typed records of a run as it goes: events, rounds, the running accuracy.

The engine builds these; they become JSON only at the edge (``metrics.jsonl``, the monitor
feed, ``rocknet status``) through ``to_json()``, whose keys are the documented ones
(docs/monitor.md): a record's JSON never loses a key a reader uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

#: Keys of the running accuracy, in the order they appear in a round's JSON.
_ACCURACY_KEYS = ("epoch", "train_accuracy", "train_loss", "eval_accuracy", "eval_loss", "eval_epoch")


@dataclass(frozen=True)
class RunningAccuracy:
    """The run's accuracy as the initiator (or, without shared labels, the owners together)
    sees it; ``None`` where nothing was measured yet. Fractions in [0, 1]; losses in nats."""

    epoch: int | None = None
    train_accuracy: float | None = None
    train_loss: float | None = None
    eval_accuracy: float | None = None
    eval_loss: float | None = None
    eval_epoch: int | None = None

    def updated(self, other: RunningAccuracy) -> RunningAccuracy:
        """This record with every field ``other`` knows replaced (the others kept)."""
        known = {f.name: getattr(other, f.name) for f in fields(other) if getattr(other, f.name) is not None}
        return replace(self, **known)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _ACCURACY_KEYS if getattr(self, k) is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunningAccuracy:
        unknown = set(data) - set(_ACCURACY_KEYS)
        if unknown:
            raise ValueError(f"unknown accuracy keys {sorted(unknown)}; known: {_ACCURACY_KEYS}")
        return cls(**data)


@dataclass(frozen=True)
class NodeRoundViews:
    """The devices as a round's record shows them, one entry per registered device in each
    list (energy in mJ, cumulative over the run; counts cumulative). Kept as columns: a
    record is built for every radio round, and its JSON is the only place rows appear."""

    id: list[int]
    status: list[str]
    ram_bytes: list[int | None]
    energy_mj: list[float]
    rx_packets: list[int]
    lost_packets: list[int]
    tx_slots: list[int]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"id": i, "status": s, "ram_bytes": r, "energy_mj": e, "rx_packets": rx,
             "lost_packets": lost, "tx_slots": tx}
            for i, s, r, e, rx, lost, tx in zip(self.id, self.status, self.ram_bytes, self.energy_mj,
                                                self.rx_packets, self.lost_packets, self.tx_slots)
        ]


@dataclass(frozen=True)
class AirRoundRecord:
    """What the air says about one resolved round (times in seconds, bytes on air in B)."""

    round_no: int
    kind: str | None  # calib / train / eval: the round's leading payload kind
    epoch: int | None
    packets: int
    slots: int
    slot_s: float
    latency_s: float
    virtual_time_s: float
    alive: list[int]  # 1 per live device
    decoded_ratio: list[float]  # per device: foreign packets decoded / expected
    loss: list[dict[str, Any]]  # the loss model's faults (LossModel.describe())
    bytes_on_air: int


@dataclass(frozen=True)
class RoundRecord:
    """One line of ``metrics.jsonl`` and one feed round: the air, the accuracy, the nodes."""

    air: AirRoundRecord
    accuracy: RunningAccuracy
    wall_time_s: float  # since the run started
    nodes: NodeRoundViews | None = None

    @property
    def round_no(self) -> int:
        return self.air.round_no

    def to_json(self) -> dict[str, Any]:
        a = self.air
        out: dict[str, Any] = {
            "type": "round", "round": a.round_no, "kind": a.kind, "epoch": a.epoch,
            "packets": a.packets, "slots": a.slots, "slot_s": a.slot_s,
            "latency_s": a.latency_s, "virtual_time_s": a.virtual_time_s, "alive": a.alive,
            "decoded_ratio": a.decoded_ratio, "loss": a.loss, "bytes_on_air": a.bytes_on_air,
        }
        out.update(self.accuracy.to_json())  # the training epoch wins over the round's
        out["wall_time_s"] = self.wall_time_s
        out["nodes"] = [] if self.nodes is None else self.nodes.to_json()
        return out


@dataclass(frozen=True)
class EventRecord:
    """A change in the run (node up/down, fault injected, run started...) at a round."""

    round_no: int
    event: str
    data: dict[str, Any] = field(default_factory=dict)  # plain JSON values

    def to_json(self) -> dict[str, Any]:
        return {"type": "event", "round": self.round_no, "event": self.event, **self.data}
