"""Runtime control of a live testbed over the control socket: faults, scenarios, bad commands."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from coordinator.ui.control_client import ControlClient
from coordinator.service.scenario import load_scenario
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.server import CoordinatorOptions
from coordinator.service.run_setup import RunArgs

pytestmark = pytest.mark.usefixtures("warm_numba")


class LiveRun:
    """A testbed running in a background thread; the test talks to it like an operator."""

    def __init__(self, tmp_path: Path, args: RunArgs, scenario: list[Any] | None = None) -> None:
        self.out = tmp_path / "run"
        self.started = threading.Event()
        self.round_seen = threading.Condition()
        self.round = -1
        self.endpoint = ""
        self.summary: dict[str, Any] = {}
        self.error: BaseException | None = None
        launch = LaunchOptions(
            out_dir=self.out, progress=False, reference=False, scenario=scenario,
            coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0),
        )
        self.thread = threading.Thread(target=self._run, args=(args, launch), daemon=True)
        self.thread.start()
        assert self.started.wait(120), "the testbed did not start"

    def _run(self, args: RunArgs, launch: LaunchOptions) -> None:
        def started(coord, backend) -> None:
            self.endpoint = coord.endpoints.control
            self.started.set()

        def on_round(record: dict) -> None:
            with self.round_seen:
                self.round = record["round"]
                self.round_seen.notify_all()

        try:
            self.summary = run_testbed(args, launch, on_started=started, on_round=on_round)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.error = exc
            self.started.set()
        finally:
            with self.round_seen:
                self.round = 1 << 30
                self.round_seen.notify_all()

    def wait_round(self, r: int, timeout_s: float = 120) -> None:
        with self.round_seen:
            assert self.round_seen.wait_for(lambda: self.round >= r, timeout_s), f"round {r} not reached"
        assert self.round < 1 << 30, "the run ended too early"

    def command(self, command: str, **args: Any):
        with ControlClient(self.endpoint, timeout_s=30) as client:
            return client.request(command, args)

    def finish(self) -> dict[str, Any]:
        self.thread.join(300)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.summary

    def records(self, kind: str) -> list[dict]:
        lines = (self.out / "metrics.jsonl").read_text().splitlines()
        return [json.loads(x) for x in lines if json.loads(x)["type"] == kind]


def long_args(**kw: Any) -> RunArgs:
    return RunArgs(dataset="GunPoint", nodes=4, epochs=200, num_features=1000, **kw)


def test_link_down_around_a_node_cuts_it_off_and_link_up_restores_it(tmp_path: Path) -> None:
    run = LiveRun(tmp_path, long_args())
    run.wait_round(60)
    status = run.command("status").data
    victim = 3
    neighbours = [b for a, b, _ in map(tuple, _links(status)) if a == victim]
    assert neighbours
    cut_from = None
    for n in neighbours:
        reply = run.command("link-down", a=victim, b=n)
        assert reply.ok, reply.message
        cut_from = reply.effective_round  # fully cut once the last link is down
    run.wait_round(cut_from + 40)
    restored_from = None
    for n in neighbours:
        reply = run.command("link-up", a=victim, b=n)
        assert reply.ok
        restored_from = reply.effective_round if restored_from is None else restored_from
    run.wait_round(restored_from + 40)
    assert run.command("stop").ok
    summary = run.finish()
    assert summary["phase"] == "finished"
    rounds = {r["round"]: r for r in run.records("round")}
    cut = [rounds[r]["decoded_ratio"][victim] for r in range(cut_from, restored_from)]
    assert cut and all(x == 0.0 for x in cut), "the cut-off node still received packets"
    before = [rounds[r]["decoded_ratio"][victim] for r in range(max(0, cut_from - 20), cut_from)]
    after = [rounds[r]["decoded_ratio"][victim] for r in range(restored_from, restored_from + 20)]
    assert min(before) == 1.0 and min(after) == 1.0
    faults = [e for e in run.records("event") if e["event"] == "fault"]
    assert {f["command"] for f in faults} == {"link-down", "link-up"}


def _links(status: dict) -> list[list[int]]:
    return [[a, b, p] for a, b, p in status["topology"]["links"] if p > 0]


def test_bad_commands_get_an_error_and_change_nothing(tmp_path: Path) -> None:
    run = LiveRun(tmp_path, long_args())
    run.wait_round(20)
    before = run.command("status").data["faults"]
    for command, args in [
        ("link-down", {"a": 0, "b": 999}),
        ("link-down", {"a": 0, "b": 0}),
        ("loss", {"p": 1.5}),
        ("burst", {"p": 0.1, "r": 0.0}),
        ("jam", {"nodes": [77], "prr": 0.0}),
        ("node-down", {"node": -1}),
        ("no-such-command", {}),
        ("loss", {}),
    ]:
        reply = run.command(command, **args)
        assert not reply.ok, (command, args)
        assert reply.message
    assert run.command("status").data["faults"] == before
    assert run.command("stop").ok
    assert run.finish()["phase"] == "finished"


def test_a_scenario_jams_half_the_network_for_exactly_fifty_rounds(tmp_path: Path) -> None:
    scenario_file = tmp_path / "jam.toml"
    scenario_file.write_text(
        "[[event]]\nat_round = 100\ncommand = \"jam\"\nnodes = [0, 1]\nprr = 0.0\nrounds = 50\n"
    )
    args = RunArgs(dataset="GunPoint", nodes=4, epochs=4, num_features=1000)
    run = LiveRun(tmp_path, args, scenario=load_scenario(scenario_file))
    summary = run.finish()
    assert summary["phase"] == "finished"
    jammed_rounds = [
        r["round"] for r in run.records("round")
        if r["decoded_ratio"][0] < 1.0 or r["decoded_ratio"][1] < 1.0
    ]
    assert jammed_rounds == list(range(100, 150))
    events = [e for e in run.records("event") if e["event"] == "scenario"]
    assert len(events) == 1 and events[0]["ok"]
