"""``summary.json``: the result of a run as typed records, JSON only at the edge.

:func:`build_summary` reads the engine after the run (its registry, the air's totals, the
FINALs) and returns a :class:`RunSummary`; ``to_json()`` gives the documented keys (README
"Outputs"; a reader's key is never renamed or removed). Energies in mJ, times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from coordinator.engine.accuracy import aggregate_pass
from coordinator.engine.engine import RunEngine
from coordinator.engine.setup import RunSetup
from protocol.stream.modes import TrainingMode
from protocol.stream.placement import label_histograms
from protocol.stream.schedule import KIND_TRAIN
from protocol.wire.stats import FinalMetrics, PassRecord


@dataclass(frozen=True)
class NodeSummary:
    """One device over the whole run."""

    id: int
    name: str
    status: str
    joins: int
    ram_bytes: int
    energy_mj: float
    energy_parts_mj: dict[str, float]
    radio_on_s: float
    rx_packets: int
    lost_packets: int
    tx_slots: int
    compute_s_modeled: float
    test_accuracy: float | None
    final_collected: bool
    # Samples of each class this device holds (training set; the placement, --split).
    train_label_histogram: list[int] = field(default_factory=list)
    # The ridge head's solve on this device (None: the SGD head, or no FINAL).
    ridge_samples: int | None = None
    ridge_alpha: float | None = None

    def to_json(self) -> dict[str, Any]:
        ridge = ({} if self.ridge_samples is None else
                 {"ridge_samples": self.ridge_samples, "ridge_alpha": self.ridge_alpha})
        return {**ridge, 
            "id": self.id, "name": self.name, "status": self.status, "joins": self.joins,
            "ram_bytes": self.ram_bytes, "energy_mj": self.energy_mj,
            "energy_parts_mj": dict(self.energy_parts_mj), "radio_on_s": self.radio_on_s,
            "rx_packets": self.rx_packets, "lost_packets": self.lost_packets,
            "tx_slots": self.tx_slots, "compute_s_modeled": self.compute_s_modeled,
            "test_accuracy": self.test_accuracy, "final_collected": self.final_collected,
            "train_label_histogram": list(self.train_label_histogram),
        }


@dataclass(frozen=True)
class ModeSummary:
    """What the training mode adds: traffic by kind and per training sample, peak RAM, and
    (private labels, data-parallel) the owners' summed test accuracy."""

    training_mode: str
    train_samples: int
    steps: int
    traffic: dict[str, Any]
    per_train_sample: dict[str, Any]
    peak_ram_bytes: int | None
    ram_budget_bytes: int
    test_scored: int | None = None  # owners' modes only
    replicas_identical: bool | None = None  # data-parallel only
    head: str = "sgd"  # the linear head (docs/ml-core.md): "sgd" or "ridge" (train_samples: its Gram items)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "training_mode": self.training_mode, "train_samples": self.train_samples,
            "steps": self.steps, "traffic": self.traffic, "per_train_sample": self.per_train_sample,
            "peak_ram_bytes": self.peak_ram_bytes, "ram_budget_bytes": self.ram_budget_bytes,
            "head": self.head,
        }
        if self.training_mode != TrainingMode.ROCKNET:
            out["test_scored"] = self.test_scored
        if self.training_mode == TrainingMode.DATA_PARALLEL:
            out["replicas_identical"] = self.replicas_identical
        return out


@dataclass(frozen=True)
class RunSummary:
    """The run's result (``summary.json``)."""

    dataset: str
    nodes: int
    protocol: str
    mode: str  # exchange mode: batch or lockstep
    epochs: int
    rounds: int
    rounds_planned: int
    phase: str
    stop_reason: str | None
    test_accuracy: float | None
    test_accuracy_mean_over_nodes: float | None
    centralized_test_accuracy: float | None
    virtual_time_s: float
    wall_time_s: float
    realtime_factor: float | None
    packet_loss_ratio: float
    exchanges: int
    exchange_wall_s_total: float
    exchange_wall_ms_median: float | None
    bad_frames: int
    stale_frames: int
    faults: list[dict[str, Any]]
    per_node: list[NodeSummary]
    by_mode: ModeSummary
    extra: dict[str, Any] = field(default_factory=dict)  # keys callers add (backend, ...)
    split: str = "contiguous"  # data placement (protocol.stream.placement)

    def with_reference(self, accuracy: float | None) -> RunSummary:
        return replace(self, centralized_test_accuracy=accuracy)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset, "nodes": self.nodes, "protocol": self.protocol,
            "mode": self.mode, "epochs": self.epochs, "rounds": self.rounds,
            "rounds_planned": self.rounds_planned, "phase": self.phase,
            "stop_reason": self.stop_reason, "test_accuracy": self.test_accuracy,
            "test_accuracy_mean_over_nodes": self.test_accuracy_mean_over_nodes,
            "centralized_test_accuracy": self.centralized_test_accuracy,
            "virtual_time_s": self.virtual_time_s, "wall_time_s": self.wall_time_s,
            "realtime_factor": self.realtime_factor, "packet_loss_ratio": self.packet_loss_ratio,
            "exchanges": self.exchanges, "exchange_wall_s_total": self.exchange_wall_s_total,
            "exchange_wall_ms_median": self.exchange_wall_ms_median,
            "bad_frames": self.bad_frames, "stale_frames": self.stale_frames,
            "faults": self.faults, "per_node": [n.to_json() for n in self.per_node],
            "split": self.split,
        }
        out.update(self.by_mode.to_json())
        out.update(self.extra)
        return out


def _last_eval(final: FinalMetrics | None) -> PassRecord | None:
    evals = [p for p in (final.passes if final else ()) if p.kind == "eval"]
    return evals[-1] if evals else None


def build_summary(engine: RunEngine, setup: RunSetup, wall_s: float,
                  reference_acc: float | None) -> RunSummary:
    """The summary of ``engine``'s run (a FINAL that does not parse counts as not collected)."""
    finals: dict[int, FinalMetrics] = {}
    for device, frame in engine.finals.items():
        try:
            finals[device] = FinalMetrics.from_wire(frame.stats)
        except ValueError:
            engine.state.bad_frames += 1
    accuracies: dict[int, float] = {}
    nodes = []
    histograms = label_histograms(setup.y_train, setup.config.n_devices, setup.config.n_classes)
    for entry in engine.registry.entries():
        t = engine.air.totals[entry.device]
        final = finals.get(entry.device)
        ev = _last_eval(final)
        if ev is not None and ev.total and ev.accuracy is not None:
            accuracies[entry.device] = ev.accuracy
        ram = final.ram_bytes if final is not None else (
            entry.last_stats.ram_bytes if entry.last_stats is not None else 0)
        nodes.append(NodeSummary(
            id=entry.device, name=entry.name, status=entry.status, joins=entry.joins,
            ram_bytes=int(ram or 0), energy_mj=t.energy_mj, energy_parts_mj=dict(t.energy_parts_mj),
            radio_on_s=t.radio_on_s, rx_packets=t.rx_packets, lost_packets=t.lost_packets,
            tx_slots=t.tx_slots, compute_s_modeled=t.compute_s_modeled,
            test_accuracy=accuracies.get(entry.device), final_collected=final is not None,
            train_label_histogram=histograms[entry.device] if entry.device < len(histograms) else [],
            ridge_samples=final.ridge_samples if final is not None else None,
            ridge_alpha=final.ridge_alpha if final is not None else None,
        ))
    # The initiator's view (lowest device id that scored the test set).
    test_acc = accuracies[min(accuracies)] if accuracies else None
    # Without shared labels only the owners scored the test set: their counts summed.
    owners = None
    if setup.config.mode != TrainingMode.ROCKNET:
        owners = aggregate_pass(_last_eval(f) for f in finals.values())
        test_acc = owners.accuracy if owners else None
    by_mode = _mode_summary(engine, setup, nodes, finals, owners)
    rx = int(engine.air.totals.rx_packets.sum())
    lost = int(engine.air.totals.lost_packets.sum())
    walls = engine.exchange_wall_s
    return RunSummary(
        dataset=setup.config.dataset, nodes=setup.config.n_devices, protocol=setup.protocol,
        mode=engine.exchange_mode, epochs=setup.config.schedule.epochs,
        rounds=engine.air.next_round, rounds_planned=setup.stream.n_rounds,
        phase=engine.state.phase, stop_reason=engine.state.stop_reason, test_accuracy=test_acc,
        test_accuracy_mean_over_nodes=float(np.mean(list(accuracies.values()))) if accuracies else None,
        centralized_test_accuracy=reference_acc, virtual_time_s=engine.air.virtual_time_s,
        wall_time_s=wall_s,
        realtime_factor=engine.air.virtual_time_s / wall_s if wall_s > 0 else None,
        packet_loss_ratio=lost / (rx + lost) if rx + lost else 0.0,
        exchanges=len(walls), exchange_wall_s_total=float(sum(walls)),
        exchange_wall_ms_median=float(np.median(walls) * 1e3) if walls else None,
        bad_frames=engine.state.bad_frames, stale_frames=engine.state.stale_frames,
        faults=setup.loss.describe(), per_node=nodes, by_mode=by_mode,
        split=setup.config.schedule.placement,
    )


def _mode_summary(engine: RunEngine, setup: RunSetup, nodes: list[NodeSummary],
                  finals: dict[int, FinalMetrics], owners: PassRecord | None) -> ModeSummary:
    config, stream = setup.config, setup.stream
    train_samples = int((stream.kind == KIND_TRAIN).sum())
    traffic = engine.air.traffic
    rams = [n.ram_bytes for n in nodes if n.ram_bytes]
    test_scored = None
    if config.mode != TrainingMode.ROCKNET:
        test_scored = owners.total if owners else 0
    replicas = None
    if config.mode == TrainingMode.DATA_PARALLEL:
        replicas = len({f.weights_digest for f in finals.values()}) == 1 if finals else None
    return ModeSummary(
        training_mode=str(config.mode), train_samples=train_samples, steps=stream.steps,
        traffic=traffic.as_dict(), per_train_sample=traffic.per_train_sample(train_samples),
        peak_ram_bytes=max(rams) if rams else None, ram_budget_bytes=config.ram_budget_bytes,
        test_scored=test_scored, replicas_identical=replicas, head=config.model.head,
    )
