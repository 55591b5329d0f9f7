"""The air: one realization per round, who received which payload, time and energy.

Each round is resolved exactly once, in increasing order, when the first exchange that touches
it has its TXs (so a fault injected now takes effect from the first round not yet resolved);
the realization is cached and reused for every payload of that round (series and partial
logits may travel in the same round but be asked for in different exchanges in batch mode).
The air does not depend on packet contents, only on who transmits: a device's liveness for a
round is taken when the round is resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol.energy import EnergyConstants, node_energy_mj
from protocol.loss import LossModel
from protocol.radio.air import AirResult, resolve
from protocol.schedule import RoundPackets, Stream, round_packets
from protocol.topology import Topology


@dataclass(frozen=True)
class RoundOutcome:
    """A resolved round: its packets, the radio result and its modeled timing."""

    round_no: int
    packets: RoundPackets
    air: AirResult
    alive_devices: np.ndarray  # bool [N]
    compute_s: float  # modeled compute window (slowest device), seconds
    latency_s: float  # compute window + slots x slot length, seconds

    def decoded_all(self, device_node: int, packet_ids: tuple[int, ...]) -> bool:
        if not packet_ids:
            return False
        return bool(self.air.decoded[device_node, list(packet_ids)].all())


@dataclass
class NodeTotals:
    """Per device, summed over the run (energy in mJ, times in seconds)."""

    energy_mj: float = 0.0
    energy_parts_mj: dict[str, float] = field(default_factory=dict)
    radio_on_s: float = 0.0
    compute_s_modeled: float = 0.0
    tx_slots: int = 0
    rx_packets: int = 0
    lost_packets: int = 0

    def add_energy(self, parts: dict[str, float]) -> None:
        for key, value in parts.items():
            if key == "total_mj":
                continue
            self.energy_parts_mj[key] = self.energy_parts_mj.get(key, 0.0) + float(value)
        self.energy_mj += float(parts["total_mj"])


class Air:
    """Resolves rounds for a stream over a topology with a (mutable) loss model."""

    def __init__(
        self,
        stream: Stream,
        topology: Topology,
        loss: LossModel,
        protocol: str,
        seed: int,
        series_length: int,
        n_classes: int,
        energy: EnergyConstants | None = None,
    ) -> None:
        self.stream = stream
        self.topology = topology
        self.loss = loss
        self.protocol = protocol
        self.seed = seed
        self.series_length = series_length
        self.n_classes = n_classes
        self.energy = energy or EnergyConstants()
        self.device_nodes = np.asarray(topology.device_nodes, dtype=np.int64)
        self.n_devices = len(self.device_nodes)
        self._cache: dict[int, RoundOutcome] = {}
        self.next_round = 0  # first round not yet resolved
        self.totals = [NodeTotals() for _ in range(self.n_devices)]
        self.virtual_time_s = 0.0
        # Modeled per-device MCU time per sample and per optimizer step (reported by nodes).
        self.sample_s = np.zeros(self.n_devices)
        self.step_s = np.zeros(self.n_devices)

    def outcome(self, round_no: int) -> RoundOutcome | None:
        return self._cache.get(round_no)

    def resolve_until(self, stop_round: int, alive_devices: np.ndarray) -> list[RoundOutcome]:
        """Resolve every round below ``stop_round`` not yet resolved, in order."""
        new: list[RoundOutcome] = []
        while self.next_round < min(stop_round, self.stream.n_rounds):
            new.append(self._resolve(self.next_round, alive_devices))
            self.next_round += 1
        return new

    def forget_before(self, round_no: int) -> None:
        """Drop cached rounds no exchange can ask for again."""
        for r in [r for r in self._cache if r < round_no]:
            del self._cache[r]

    def _resolve(self, round_no: int, alive_devices: np.ndarray) -> RoundOutcome:
        packets = round_packets(
            self.stream, round_no, self.series_length, self.n_classes, initiator=0
        )
        sources = self.device_nodes[packets.source.astype(np.int64)]
        alive = self.loss.node_up_mask().copy()
        alive[self.device_nodes[~alive_devices]] = False
        air = resolve(
            self.protocol,
            self.topology,
            sources.astype(np.int16),
            round_no=round_no,
            loss=self.loss,
            seed=self.seed,
            alive=alive,
        )
        compute_s = self._compute_window_s(round_no, alive_devices)
        latency_s = compute_s + air.n_slots * air.slot_s
        outcome = RoundOutcome(round_no, packets, air, alive_devices.copy(), compute_s, latency_s)
        self._cache[round_no] = outcome
        self._account(outcome)
        return outcome

    def _compute_window_s(self, round_no: int, alive_devices: np.ndarray) -> float:
        """The round's compute window: the slowest device's modeled work for it."""
        per_device = self._device_compute_s(round_no)
        live = per_device[alive_devices] if alive_devices.any() else per_device
        return float(live.max()) if live.size else 0.0

    def _device_compute_s(self, round_no: int) -> np.ndarray:
        work = np.zeros(self.n_devices)
        if self.stream.series_item(round_no) is not None:
            work += self.sample_s  # transform (+ partial logits) of the series just received
        item = self.stream.logits_item(round_no)
        if item is not None and self.stream.step_after[item]:
            work += self.step_s
        return work

    def _account(self, outcome: RoundOutcome) -> None:
        air = outcome.air
        self.virtual_time_s += outcome.latency_s
        compute = self._device_compute_s(outcome.round_no)
        source_alive = outcome.alive_devices[outcome.packets.source.astype(np.int64)]
        for device, node in enumerate(self.device_nodes):
            if not outcome.alive_devices[device]:
                continue
            totals = self.totals[device]
            parts = node_energy_mj(
                tx_slots=int(air.tx_slots[node]),
                rx_slots=int(air.rx_slots[node]),
                off_slots=int(air.off_slots[node]),
                slot_s=air.slot_s,
                air_s=air.air_s,
                cpu_s=float(compute[device]),
                idle_s=max(0.0, outcome.compute_s - float(compute[device])),
                consts=self.energy,
                rx_ok_slots=None if air.rx_ok_slots is None else int(air.rx_ok_slots[node]),
            )
            totals.add_energy(parts.as_dict())
            totals.radio_on_s += (int(air.tx_slots[node]) + int(air.rx_slots[node])) * air.slot_s
            totals.compute_s_modeled += float(compute[device])
            totals.tx_slots += int(air.tx_slots[node])
            foreign = (outcome.packets.source != device) & source_alive
            got = int(air.decoded[node, foreign].sum())
            totals.rx_packets += got
            totals.lost_packets += int(foreign.sum()) - got

    def round_record(self, outcome: RoundOutcome) -> dict[str, Any]:
        """One line of metrics.jsonl (what the monitor and the report read)."""
        air = outcome.air
        nodes = self.device_nodes
        source_alive = outcome.alive_devices[outcome.packets.source.astype(np.int64)]
        decoded_ratio = []
        for device, node in enumerate(nodes):
            foreign = (outcome.packets.source != device) & source_alive
            n = int(foreign.sum())
            decoded_ratio.append(float(air.decoded[node, foreign].sum()) / n if n else 1.0)
        s_item = self.stream.series_item(outcome.round_no)
        return {
            "type": "round",
            "round": outcome.round_no,
            "kind": None if s_item is None else ["calib", "train", "eval"][int(self.stream.kind[s_item])],
            "epoch": None if s_item is None else int(self.stream.epoch[s_item]),
            "packets": outcome.packets.n_packets,
            "slots": int(air.n_slots),
            "slot_s": float(air.slot_s),
            "latency_s": outcome.latency_s,
            "virtual_time_s": self.virtual_time_s,
            "alive": outcome.alive_devices.astype(int).tolist(),
            "decoded_ratio": [round(x, 4) for x in decoded_ratio],
            "loss": self.loss.describe(),
        }
