"""The run engine through the in-process link: timing rules on a manual clock, liveness,
kill and rejoin, and the records it emits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coordinator.backends.interface import node_name
from coordinator.backends.inprocess import InProcessBackend, in_process_run
from coordinator.engine.clock import ManualClock
from coordinator.engine.engine import FINISHED, EngineOptions, RunAborted, RunEngine
from coordinator.engine.inprocess_link import InProcessLink, make_agents
from coordinator.engine.records import EventRecord, RoundRecord
from coordinator.service.run_setup import RunArgs, build_setup

pytestmark = pytest.mark.usefixtures("warm_numba")


def small(**kw: object) -> RunArgs:
    base: dict[str, object] = dict(dataset="GunPoint", nodes=3, epochs=1, num_features=1000, batch_size=25)
    base.update(kw)
    return RunArgs(**base)  # type: ignore[arg-type]


class Sink:
    """Collects what the engine publishes."""

    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        self.rounds: list[RoundRecord] = []

    def record_event(self, record: EventRecord) -> None:
        self.events.append(record)

    def record_round(self, record: RoundRecord) -> None:
        self.rounds.append(record)

    def named(self, event: str) -> list[EventRecord]:
        return [e for e in self.events if e.event == event]


def test_registration_times_out_on_the_engine_clock_without_waiting() -> None:
    setup = build_setup(small())
    clock = ManualClock()
    agents = make_agents(2, node_name)  # one device of three never comes
    engine = RunEngine(setup, InProcessLink(agents, clock=clock),
                       EngineOptions(register_timeout_s=600.0), clock=clock)
    with pytest.raises(RunAborted, match="only 2 of 3 nodes registered within 600 s"):
        engine.run()
    assert clock.monotonic() >= 600.0  # the deadline passed on the manual clock only


def test_every_round_is_published_once_in_order_with_the_run_events() -> None:
    setup = build_setup(small())
    sink = Sink()
    engine = in_process_run(setup, sink=sink).run()
    assert engine.state.phase == FINISHED
    assert [r.round_no for r in sink.rounds] == list(range(setup.stream.n_rounds))
    assert [e.event for e in sink.events][:3] == ["node_registered"] * 3
    assert sink.named("run_started") and sink.named("run_finished")
    last = sink.rounds[-1].to_json()
    assert last["type"] == "round" and last["virtual_time_s"] == pytest.approx(engine.air.virtual_time_s)
    assert [n["id"] for n in last["nodes"]] == [0, 1, 2]
    assert "train_accuracy" in last and set(engine.finals) == {0, 1, 2}


def test_a_device_late_for_down_after_exchanges_is_down_and_comes_back_up() -> None:
    setup = build_setup(small())
    sink = Sink()
    late_exchanges = {2, 3}
    run = in_process_run(setup, EngineOptions(down_after=2), sink=sink,
                         late=lambda exchange, device: device == 1 and exchange in late_exchanges)
    engine = run.run()
    down = sink.named("node_down")
    up = sink.named("node_up")
    assert [e.data["device"] for e in down] == [1] and down[0].data["reason"] == "silent"
    assert [e.data["device"] for e in up] == [1] and up[0].round_no >= down[0].round_no
    assert run.link.late_frames == len(late_exchanges)
    assert engine.state.phase == FINISHED and set(engine.finals) == {0, 1, 2}


def test_a_killed_in_process_device_is_down_at_once_and_rejoins_from_its_checkpoint(tmp_path: Path) -> None:
    setup = build_setup(small(epochs=3))
    sink = Sink()
    run = in_process_run(setup, sink=sink, checkpoint_dir=tmp_path)
    backend = InProcessBackend(run.link, checkpoint_dir=tmp_path)
    engine = run.engine

    class KillAndRestart(Sink):
        def record_round(self, record: RoundRecord) -> None:
            sink.record_round(record)
            if record.round_no == 120:
                steps_at_kill.append(run.agents[2].device.steps_taken)  # type: ignore[attr-defined]
                backend.kill(2)
            if record.round_no == 200:
                backend.start(2)

        def record_event(self, record: EventRecord) -> None:
            sink.record_event(record)

    steps_at_kill: list[int] = []
    engine.sink = KillAndRestart()
    engine.run()
    down = sink.named("node_down")
    assert [(e.data["device"], e.data["reason"]) for e in down] == [(2, "disconnected")]
    rejoined = sink.named("node_rejoined")
    assert [e.data["device"] for e in rejoined] == [2] and rejoined[0].round_no > down[0].round_no
    assert engine.registry.by_device(2).joins == 2
    restarted = run.link.agents[b"node-02"]
    assert restarted is not run.agents[2]  # a fresh agent, resumed from its checkpoint
    # It came back with the steps of its checkpoint (the last step before it was killed).
    assert steps_at_kill[0] > 0 and restarted.device.steps_taken >= steps_at_kill[0]  # type: ignore[attr-defined]
    assert engine.state.phase == FINISHED and set(engine.finals) == {0, 1, 2}
    assert np.isfinite(engine.finals[2].weights).all()


def test_node_names_are_device_ids_whatever_order_they_register_in() -> None:
    setup = build_setup(small(nodes=4))
    agents = make_agents(4, node_name)[::-1]  # node-03 says HELLO first
    engine = RunEngine(setup, InProcessLink(agents))
    engine.wait_for_nodes()
    assert [(e.device, e.name) for e in engine.registry.entries()] == [
        (d, f"node-{d:02d}") for d in range(4)]


def test_a_numbered_name_outside_the_run_or_taken_is_refused_with_the_fix() -> None:
    from coordinator.engine.registry import Registry

    registry = Registry(3)
    assert registry.register("node02", b"a")[0].device == 2  # compose: nodeNN is device NN
    assert registry.register("edge-box", b"b")[0].device == 0  # others: lowest free id
    with pytest.raises(LookupError, match="devices 0..2: start node-00 .. node-02"):
        registry.register("node-07", b"c")
    with pytest.raises(LookupError, match="device 2, which 'node02' already is"):
        registry.register("node-02", b"d")
