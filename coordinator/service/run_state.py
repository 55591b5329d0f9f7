"""The coordinator's progress as plain values: what its checkpoint and its replay log hold.

Two pieces, shared by :mod:`coordinator.service.run_checkpoint` (a full snapshot) and
:mod:`coordinator.service.replay_log` (one record per exchange since that snapshot):

- a resolved round (:func:`round_to_plain` / :func:`round_from_plain`): the air's arrays,
  its slot figures and the round's compute window, from which the air rebuilds the
  :class:`~coordinator.engine.medium.RoundOutcome` with its delivery masks;
- the run's progress after an exchange (:class:`Progress`): the next plan, the loss model's
  state (Gilbert–Elliott states, RNG), the registry, the running accuracy, frame counters,
  the metrics file's length, the pending scenario, the per-device modeled costs and the
  encoded RXs a restart sends again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.engine.engine import RunEngine
from coordinator.engine.medium import Air
from coordinator.engine.outcome import RoundOutcome
from coordinator.engine.records import RunningAccuracy
from coordinator.service.scenario import ScenarioEvent
from protocol.air.radio.resolve import AirResult
from protocol.stream.schedule import round_packets

AIR_ARRAYS = ("decoded", "tx_slots", "rx_slots", "rx_ok_slots", "off_slots", "full_rank_slot")


def round_to_plain(outcome: RoundOutcome) -> dict[str, Any]:
    """One resolved round as msgpack-able values (arrays stay arrays)."""
    air = outcome.air
    plain: dict[str, Any] = {name: np.asarray(getattr(air, name)) for name in AIR_ARRAYS}
    if air.rx_listen_slots is not None:  # Mixer: slots listened through unsynchronized
        plain["rx_listen_slots"] = np.asarray(air.rx_listen_slots)
    plain.update(round=outcome.round_no, alive_devices=outcome.alive_devices, n_slots=air.n_slots,
                 slot_s=air.slot_s, air_s=air.air_s, completion_slot=air.completion_slot,
                 protocol=air.protocol, compute_s=outcome.compute_s, latency_s=outcome.latency_s)
    return plain


def round_from_plain(air: Air, plain: dict[str, Any]) -> RoundOutcome:
    """The :class:`RoundOutcome` :func:`round_to_plain` saved (KeyError/TypeError if damaged)."""
    r = int(plain["round"])
    result = AirResult(
        protocol=str(plain["protocol"]), round_no=r,
        **{name: np.array(plain[name]) for name in AIR_ARRAYS},
        n_slots=int(plain["n_slots"]), slot_s=float(plain["slot_s"]), air_s=float(plain["air_s"]),
        completion_slot=int(plain["completion_slot"]),
        rx_listen_slots=(np.array(plain["rx_listen_slots"]) if "rx_listen_slots" in plain
                         else None),
    )
    packets = round_packets(air.stream, r, air.series_length, air.n_classes, initiator=0)
    return air.make_outcome(r, packets, result, np.array(plain["alive_devices"]).astype(bool),
                            float(plain["compute_s"]), float(plain["latency_s"]))


@dataclass(frozen=True)
class Progress:
    """Where the run stands after an exchange, besides the air's rounds and totals."""

    next_plan: int
    metrics_offset: int  # bytes of metrics.jsonl written by then
    pending_rx: dict[int, bytes]  # device -> its encoded RX of that exchange
    scenario: list[ScenarioEvent]

    @staticmethod
    def of(engine: RunEngine, next_plan: int, pending_rx: dict[int, bytes], metrics_offset: int,
           scenario: list[ScenarioEvent]) -> dict[str, Any]:
        """The engine's progress as plain values."""
        air = engine.air
        return {
            "next_plan": next_plan,
            "next_round": air.next_round,
            "loss": engine.setup.loss.to_state(),
            "registry": [[e.device, e.name, e.joins, e.forced_down] for e in engine.registry.entries()],
            "accuracy": engine.state.accuracy.to_json(),
            "bad_frames": engine.state.bad_frames,
            "stale_frames": engine.state.stale_frames,
            "round": engine.state.round,
            "metrics_offset": metrics_offset,
            "scenario": [[e.at_round, e.at_time_s, e.command, e.args] for e in scenario],
            "sample_s": air.sample_s.copy(),
            "step_s": air.step_s.copy(),
            "rx": {str(device): raw for device, raw in pending_rx.items()},
        }

    @staticmethod
    def apply(engine: RunEngine, plain: dict[str, Any]) -> Progress:
        """Put ``plain`` back into ``engine`` (KeyError/TypeError/ValueError if damaged)."""
        accuracy = RunningAccuracy.from_json(dict(plain["accuracy"]))
        scenario = [ScenarioEvent(a, b, c, d) for a, b, c, d in plain["scenario"]]
        pending = {int(device): bytes(raw) for device, raw in plain["rx"].items()}
        engine.setup.loss.load_state(plain["loss"])
        for device, name, joins, forced in plain["registry"]:
            engine.registry.restore(int(device), str(name), int(joins), bool(forced))
        engine.state.accuracy = accuracy
        engine.state.bad_frames = int(plain["bad_frames"])
        engine.state.stale_frames = int(plain["stale_frames"])
        engine.state.round = int(plain["round"])
        engine.air.sample_s = np.array(plain["sample_s"], dtype=np.float64)
        engine.air.step_s = np.array(plain["step_s"], dtype=np.float64)
        return Progress(int(plain["next_plan"]), int(plain["metrics_offset"]), pending, scenario)
