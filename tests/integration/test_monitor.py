"""The live monitor (coordinator/ui/monitor/, coordinator/ui/feed_client.py).

Grouped by concept: the state that folds a snapshot and the feed (pure), the dashboard
rendered to text (pure), and attaching to a real :class:`~coordinator.service.server.Coordinator`
over its real sockets (the coordinator's air resolves real rounds; node processes are
replaced by a driver thread that publishes what ``Coordinator._exchange`` publishes).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from coordinator.ui.cli import build_parser
from coordinator.ui.control_client import ControlClient
from coordinator.ui.feed_client import EndpointError, FeedClient, resolve_endpoints
from coordinator.ui.monitor import (
    Applied,
    MonitorState,
    View,
    link_view,
    render_dashboard,
    run_monitor,
    sparkline,
)
from protocol.air.loss import LossModel
from protocol.air.topology import Topology
from protocol.wire.frames import FeedEvent, FeedRound, encode

ROOT = Path(__file__).resolve().parents[2]


# --- a synthetic run (the shapes of Coordinator.status() and Air.round_record) -----------

def synthetic_run(n: int, rounds: int, relays: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A snapshot at round 0 and ``rounds`` round records of an ``n``-device run."""
    topo = Topology.default_testbed(n, relays)
    loss = LossModel(topo)
    rng = np.random.default_rng(7)
    snapshot = {
        "phase": "running", "dataset": "GunPoint", "protocol": "mixer", "mode": "batch",
        "n_devices": n, "registered": n, "round": 0, "next_round": 0, "rounds": 5 * rounds,
        "exchange": 0, "exchanges": rounds, "epochs": 5, "virtual_time_s": 0.0,
        "wall_time_s": 0.0, "bad_frames": 0, "stale_frames": 0, "accuracy": {},
        "faults": loss.describe(),
        "nodes": [{"id": d, "name": f"node-{d:02d}", "status": "up", "joins": 1, "pid": 4000 + d}
                  for d in range(n)],
        "topology": topo.to_dict(),
        "endpoints": {"nodes": "tcp://127.0.0.1:7100", "feed": "tcp://127.0.0.1:7101",
                      "control": "tcp://127.0.0.1:7102"},
        "error": None,
    }
    records = []
    energy = np.zeros(n)
    for r in range(rounds):
        energy += rng.uniform(0.5, 1.5, n)
        ratio = rng.uniform(0.6, 1.0, n).round(4)
        records.append({
            "type": "round", "round": r, "kind": "train", "epoch": r // 10, "packets": n,
            "slots": 40, "slot_s": 0.004, "latency_s": 0.2, "virtual_time_s": 0.2 * (r + 1),
            "alive": [1] * n, "decoded_ratio": ratio.tolist(), "loss": loss.describe(),
            "train_accuracy": round(0.3 + 0.6 * r / rounds + rng.uniform(0, 0.05), 4),
            "train_loss": round(2.0 - 1.5 * r / rounds, 4), "wall_time_s": 0.05 * (r + 1),
            "nodes": [{"id": d, "status": "up", "ram_bytes": 150_000 + 37 * d,
                       "energy_mj": round(float(energy[d]), 6), "rx_packets": 10 * r + d,
                       "lost_packets": d % 3, "tx_slots": 5 * r} for d in range(n)],
        })
    return snapshot, records


def folded(snapshot: dict[str, Any], records: list[dict[str, Any]]) -> MonitorState:
    state = MonitorState.from_snapshot(snapshot)
    for rec in records:
        assert state.apply(FeedRound(round=rec["round"], data=rec)) is Applied.APPLIED
    return state


def text_of(state: MonitorState, view: View | None = None, width: int = 160) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render_dashboard(state, view or View(width=width)))
    return console.export_text()


# --- the state ----------------------------------------------------------------------------

class TestState:
    def test_rounds_the_snapshot_covers_are_dropped_then_the_next_applies(self) -> None:
        snap, recs = synthetic_run(4, 12)
        snap = dict(snap, next_round=5)
        state = MonitorState.from_snapshot(snap)
        assert state.apply(FeedRound(round=3, data=recs[3])) is Applied.STALE
        assert state.confirmed  # anything older than the snapshot proves the feed was live
        assert state.apply(FeedRound(round=4, data=recs[4])) is Applied.STALE
        assert state.apply(FeedRound(round=5, data=recs[5])) is Applied.APPLIED
        assert (state.round, state.next_round) == (5, 6)
        assert state.nodes[2].rx_packets == recs[5]["nodes"][2]["rx_packets"]

    def test_a_first_round_past_the_snapshot_is_a_gap(self) -> None:
        snap, recs = synthetic_run(4, 12)
        state = MonitorState.from_snapshot(dict(snap, next_round=5))
        assert state.apply(FeedRound(round=7, data=recs[7])) is Applied.GAP
        assert state.next_round == 5 and state.rounds_applied == 0

    def test_once_in_step_any_jump_or_repeat_is_a_gap(self) -> None:
        snap, recs = synthetic_run(4, 12)
        state = folded(snap, recs[:3])
        assert state.apply(FeedRound(round=4, data=recs[4])) is Applied.GAP
        assert state.apply(FeedRound(round=1, data=recs[1])) is Applied.GAP  # a new run
        assert state.apply(FeedRound(round=3, data=recs[3])) is Applied.APPLIED

    def test_events_before_the_snapshot_are_dropped_later_ones_logged(self) -> None:
        snap, _ = synthetic_run(4, 1)
        state = MonitorState.from_snapshot(dict(snap, next_round=8))
        old = FeedEvent(round=6, event="node_down", data={"device": 1, "name": "node-01"})
        assert state.apply(old) is Applied.STALE and state.nodes[1].status == "up"
        ahead = FeedEvent(round=9, event="node_down", data={"device": 2, "name": "node-02"})
        state2 = MonitorState.from_snapshot(dict(snap, next_round=8))
        assert state2.apply(ahead) is Applied.APPLIED
        assert not state2.confirmed  # a later event alone does not prove no round was missed
        assert state2.nodes[2].status == "down"

    def test_new_snapshot_with_earlier_rounds_starts_a_new_history(self) -> None:
        snap, recs = synthetic_run(4, 6)
        state = folded(snap, recs)
        assert len(state.train_accuracy) == 6
        state.load_snapshot(dict(snap, next_round=2))
        assert len(state.train_accuracy) == 0 and state.next_round == 2

    def test_events_update_nodes_and_phase(self) -> None:
        snap, recs = synthetic_run(3, 2)
        state = folded(dict(snap, phase="waiting", registered=0, nodes=[]), recs[:0])
        state.apply(FeedEvent(round=0, event="node_registered",
                              data={"device": 2, "name": "edge-2", "registered": 1}))
        state.apply(FeedEvent(round=0, event="paused", data={}))
        assert state.nodes[2].name == "edge-2" and state.run["registered"] == 1
        assert state.run["phase"] == "paused"
        state.apply(FeedEvent(round=0, event="run_finished", data={"phase": "finished"}))
        assert state.finished


# --- links and small pieces ----------------------------------------------------------------

class TestLinks:
    def test_faults_replayed_on_the_topology(self) -> None:
        topo = Topology.grid(2, 3, prr=0.95)
        loss = LossModel(topo)
        loss.link_down(0, 1)
        loss.set_bernoulli(0.5, link=[1, 2])
        loss.jam(nodes=[4], prr_factor=0.0, from_round=10, to_round=20)
        view = link_view(topo.to_dict(), loss.describe(), round_no=12)
        assert view is not None
        assert view.pair_down[0, 1] and view.pair_down[1, 0]
        assert view.pair_prr[1, 2] == pytest.approx(0.95 * 0.5)
        assert view.pair_prr[1, 4] == 0.0  # 4 is jammed in round 12
        assert view.pair_prr[0, 3] == pytest.approx(0.95)
        assert np.array_equal(view.prr, loss.static_prr(12))  # the radio's own numbers
        after = link_view(topo.to_dict(), loss.describe(), round_no=20)
        assert after is not None and after.pair_prr[1, 4] == pytest.approx(0.95)
        assert view.counts() == (7, 1, 4)  # 1-2 degraded; 0-1 cut; 1-4, 3-4, 4-5 jammed to 0

    def test_a_sparse_topology_gives_the_same_view(self) -> None:
        topo = Topology.default_testbed(6, 1)
        dense = topo.to_dict()
        sparse = {k: v for k, v in dense.items() if k != "prr"}
        sparse["links"] = [[a, b, p] for a, b, p in topo.links()]
        a, b = link_view(dense, [], 0), link_view(sparse, [], 0)
        assert a is not None and b is not None and np.array_equal(a.prr, b.prr)
        assert link_view({"roles": ["compute"]}, [], 0) is None  # unreadable: no view

    def test_gilbert_elliott_is_drawn_at_its_mean_loss(self) -> None:
        topo = Topology.line(3, prr=1.0)
        loss = LossModel(topo)
        loss.set_gilbert_elliott(0.1, 0.3, link=[0, 1])
        view = link_view(topo.to_dict(), loss.describe(), round_no=0)
        assert view is not None
        assert view.prr[0, 1] == pytest.approx(1 - 0.1 / 0.4)
        assert view.prr[1, 2] == 1.0

    def test_fault_lines_merge_both_directions_and_date_jammers(self) -> None:
        from coordinator.ui.monitor import fault_lines

        loss = LossModel(Topology.grid(2, 3))
        loss.link_down(0, 1)
        loss.link_down(1, 2, directed=True)
        loss.jam(nodes=[4], prr_factor=0.5, from_round=10, to_round=20)
        lines = fault_lines(loss.describe(), round_no=25)
        assert lines[:2] == ["link 0↔1 DOWN", "link 1→2 DOWN"]
        assert lines[2].startswith("jam #0 on [4] PRR×0.5 from round 10 to 19") and "(over)" in lines[2]
        assert "(ahead)" in fault_lines(loss.describe(), round_no=5)[2]
        assert "(" not in fault_lines(loss.describe(), round_no=15)[2]

    def test_history_keeps_the_whole_run_in_bounded_points(self) -> None:
        from coordinator.ui.monitor import History

        h = History(capacity=4)
        for v in range(100):
            h.append(float(v))
        values = h.values()
        assert len(values) < 8 + 1 and h.stride == 16
        assert values[0] == pytest.approx(np.mean(range(16)))  # the start is still there
        assert values[-1] == pytest.approx(np.mean(range(96, 100)))  # and the latest points
        assert History(4).values() == []

    def test_sparkline_scales_and_buckets(self) -> None:
        assert sparkline([0.0, 0.5, 1.0], 3, 0.0, 1.0) == "▁▅█"
        assert sparkline([None, 1.0], 2, 0.0, 1.0) == " █"
        assert len(sparkline(list(np.linspace(0, 1, 1000)), 40)) == 40
        assert sparkline([], 10) == ""

    def test_endpoints(self) -> None:
        e = resolve_endpoints("10.0.0.5", 7102, 7101)
        assert (e.control, e.feed) == ("tcp://10.0.0.5:7102", "tcp://10.0.0.5:7101")
        e = resolve_endpoints("tcp://coord:9000", 7102, 7201)
        assert (e.control, e.feed) == ("tcp://coord:9000", "tcp://coord:7201")
        assert resolve_endpoints("coord:9000", 7102, 7201) == e
        with pytest.raises(EndpointError):
            resolve_endpoints("udp://x:1", 7102, 7101)
        with pytest.raises(EndpointError):
            resolve_endpoints("tcp://x:port", 7102, 7101)
        with pytest.raises(EndpointError):
            resolve_endpoints("host", 0, 7101)


# --- the dashboard -------------------------------------------------------------------------

class TestDashboard:
    def test_twenty_nodes_fault_and_accuracy(self) -> None:
        snap, recs = synthetic_run(20, 30)
        state = folded(snap, recs[:12])
        fault = FeedEvent(round=12, event="fault", data={
            "command": "link-down", "args": {"a": 3, "b": 4}, "effective_round": 12})
        assert state.apply(fault) is Applied.APPLIED
        topo = Topology.from_dict(snap["topology"])
        loss = LossModel(topo)
        loss.link_down(3, 4)
        for rec in recs[12:]:
            rec["loss"] = loss.describe()
            assert state.apply(FeedRound(round=rec["round"], data=rec)) is Applied.APPLIED
        text = text_of(state)
        for d in range(20):  # every node has its row: id, name, status
            assert re.search(rf"\b{d}\s+node-{d:02d}\s+up\s", text), f"node {d} missing"
        assert "fault link-down a=3 b=4 (from round 12)" in text  # event log
        assert "link 3↔4 DOWN" in text  # active faults
        assert re.search(r"^│\s+3 │.*✗4", text, re.MULTILINE)  # the cut link in the topology
        last = recs[-1]
        assert f"{last['train_accuracy']:.3f}" in text and f"{last['train_loss']:.4f}" in text
        assert f"round {last['round']}/{snap['rounds']}" in text

    @pytest.mark.parametrize("n,relays,width,height,all_fit", [
        (20, 1, 160, 40, True), (20, 1, 100, 24, False), (84, 1, 160, 50, False),
        (84, 116, 160, 45, False), (84, 116, 240, 70, True)])
    def test_fits_the_terminal_with_many_nodes(self, n: int, relays: int, width: int,
                                               height: int, all_fit: bool) -> None:
        snap, recs = synthetic_run(n, 5, relays=relays)
        recs[-1]["nodes"][n - 1]["status"] = "down"
        state = folded(snap, recs)
        text = text_of(state, View(width=width, height=height), width=width)
        lines = text.rstrip("\n").split("\n")
        assert len(lines) <= height
        assert max(len(line) for line in lines) <= width
        # the down node is pinned in view whichever page is shown
        assert re.search(rf"\b{n - 1}\s+node-{n - 1:02d}\s+down\b", text)
        shown = {int(m) for m in re.findall(r"\b(\d+)\s+node-\d\d\s", text)}
        assert (shown == set(range(n))) == all_fit
        assert ("hidden" in text) != all_fit  # the table says when it does not show all

    def test_pages_cycle_through_healthy_nodes(self) -> None:
        snap, recs = synthetic_run(60, 3)
        for rec in recs:  # every node healthy: none is pinned, all of them page
            rec["decoded_ratio"] = [1.0] * 60
        state = folded(snap, recs)
        seen: set[int] = set()
        for page in range(12):
            text = text_of(state, View(width=100, height=40, page=page))
            seen |= {int(m) for m in re.findall(r"\b(\d+)\s+node-\d\d\s", text)}
        assert seen == set(range(60))

    def test_renders_before_any_round_and_without_topology(self) -> None:
        snap, _ = synthetic_run(4, 1)
        state = MonitorState.from_snapshot(dict(snap, topology=None, phase="waiting"))
        text = text_of(state, View(width=100, height=30))
        assert "waiting" in text and "no topology" in text and "no events yet" in text


class TestLabelHistograms:
    def test_compact_text_counts_then_blocks(self) -> None:
        from coordinator.ui.monitor.text import label_histogram_text

        assert label_histogram_text([3, 0, 7], 6) == "3/0/7"
        assert label_histogram_text([10, 0], 6) == "10/0"
        assert label_histogram_text(None, 6) == "–"
        # 6 classes whose counts do not fit: one block per class, largest class full
        assert label_histogram_text([12, 0, 6, 3, 12, 1], 6) == "█·▄▂█▁"
        assert label_histogram_text(list(range(1, 11)), 6) == "▁▂▃▄▄…"  # 10 classes in 6 cells: (8c - 1) // 10

    def test_each_node_row_shows_its_histogram(self) -> None:
        snap, recs = synthetic_run(20, 3)
        hists = [[d % 3, 10 - d % 3] for d in range(20)]
        state = folded(dict(snap, train_label_histograms=hists), recs)
        assert state.nodes[4].label_histogram == (1, 9)
        text = text_of(state)
        assert "labels" in text
        for d in range(20):
            assert re.search(rf"\b{d}\s+node-{d:02d}\s+up\s.*\s{d % 3}/{10 - d % 3}\b", text), d
        lines = text.rstrip("\n").split("\n")
        assert max(len(line) for line in lines) <= 160


# --- real sockets: a Coordinator with a driver thread ---------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Driver(threading.Thread):
    """Owns a real Coordinator's sockets: serves control and publishes a round per poll."""

    def __init__(self, ports: tuple[int, int, int] = (0, 0, 0), n: int = 4) -> None:
        super().__init__(daemon=True)
        from coordinator.service.run_setup import RunArgs, build_setup
        from coordinator.service.server import Coordinator, CoordinatorOptions

        setup = build_setup(RunArgs(dataset="GunPoint", nodes=n, epochs=50))
        self.coord = Coordinator(setup, CoordinatorOptions(
            node_port=ports[0], feed_port=ports[1], control_port=ports[2]))
        for d in range(n):
            self.coord.registry.register(f"node-{d:02d}", f"id-{d}".encode(), pid=1)
        self.n = n
        self.stop = threading.Event()
        self.published = 0
        self.warm = threading.Event()

    def run(self) -> None:
        coord = self.coord
        try:
            coord.state.phase = "running"
            coord.event("run_started", nodes=self.n, rounds=coord.stream.n_rounds)
            alive = np.ones(self.n, dtype=bool)
            while not self.stop.is_set() and coord.air.next_round < coord.stream.n_rounds:
                coord.engine.serve(0.002)  # control requests are answered here
                if coord.state.paused:
                    continue
                for outcome in coord.air.resolve_until(coord.air.next_round + 1, alive):
                    coord.state.round = outcome.round_no
                    coord.engine.publish_round(outcome)
                    self.published += 1
                if self.published >= 20:
                    self.warm.set()
        finally:
            coord.close()


@pytest.fixture
def driver() -> Iterator[Driver]:
    d = Driver()
    d.start()
    assert d.warm.wait(30), "the driver did not get going"
    yield d
    d.stop.set()
    d.join(10)


def monitor_args(*extra: str, control: str, feed: str) -> Any:
    return build_parser().parse_args([
        "monitor", "--connect", control, "--feed-port", feed.rpartition(":")[2], *extra])


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TestAttach:
    def test_jsonl_mid_run_snapshot_then_consecutive_rounds(self, driver: Driver) -> None:
        ep = driver.coord.endpoints
        out, err = io.StringIO(), io.StringIO()
        code = run_monitor(monitor_args("--jsonl", "--count", "25", control=ep.control,
                                        feed=ep.feed), out=out, err=err)
        assert code == 0, err.getvalue()
        lines = jsonl(out.getvalue())
        assert lines[0]["type"] == "snapshot" and lines[0]["round"] >= 19  # attached mid-run
        assert lines[0]["n_devices"] == 4 and len(lines[0]["nodes"]) == 4
        rounds = [line["round"] for line in lines if line["type"] == "round"]
        assert len(rounds) == 25
        assert rounds == list(range(lines[0]["round"] + 1, lines[0]["round"] + 26))
        assert all({"type", "round"} <= line.keys() for line in lines)

    def test_status_carries_every_device_label_histogram_to_the_node_table(self, driver: Driver) -> None:
        from coordinator.ui.feed_client import Endpoints
        from coordinator.ui.monitor import Follower
        from protocol.stream.placement import label_histograms

        setup = driver.coord.setup
        want = label_histograms(setup.y_train, 4, setup.config.n_classes)
        assert sum(map(sum, want)) == 50  # GunPoint's training set, over the 4 devices
        follower = Follower(Endpoints(driver.coord.endpoints.control, driver.coord.endpoints.feed))
        try:
            follower.attach(wait_s=10)
            assert [list(follower.state.nodes[d].label_histogram or ()) for d in range(4)] == want
            text = text_of(follower.state)
            for d in range(4):
                assert "/".join(map(str, want[d])) in text
        finally:
            follower.close()

    def test_injected_fault_reaches_the_feed_and_the_state(self, driver: Driver) -> None:
        from coordinator.ui.feed_client import Endpoints
        from coordinator.ui.monitor import Follower

        ep = driver.coord.endpoints
        follower = Follower(Endpoints(ep.control, ep.feed))
        try:
            follower.attach(wait_s=10)
            with ControlClient(ep.control) as client:
                reply = client.request("link-down", {"a": 0, "b": 1})
            assert reply.ok, reply.message
            start = follower.state.next_round
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and follower.state.next_round < reply.effective_round + 3:
                follower.poll(0.2)
            state = follower.state
            assert state.next_round > reply.effective_round + 1 >= start
            assert state.resyncs == 0
            faults = [e for e in state.events if e.event == "fault"]
            assert faults and faults[0].data["args"] == {"a": 0, "b": 1}
            assert {"kind": "link_down", "link": [0, 1]} in state.faults
            text = text_of(state)
            assert "link 0↔1 DOWN" in text and "fault link-down a=0 b=1" in text
        finally:
            follower.close()

    def test_a_gap_in_the_feed_resyncs_from_a_fresh_snapshot(self, driver: Driver) -> None:
        from coordinator.ui.feed_client import Endpoints
        from coordinator.ui.monitor import Follower

        ep = driver.coord.endpoints
        follower = Follower(Endpoints(ep.control, ep.feed))
        try:
            outputs = follower.attach(wait_s=10)
            # Stop listening for a while: the publisher drops what it sends meanwhile.
            follower.feed.unsubscribe()
            outputs += follower.poll(0.3)
            target = driver.published + 50
            deadline = time.monotonic() + 20
            while driver.published < target and time.monotonic() < deadline:
                follower.feed.receive(0.05)  # whatever was in flight: thrown away
            follower.feed.subscribe()
            while follower.state.resyncs == 0 and time.monotonic() < deadline:
                outputs += follower.poll(0.1)
            for _ in range(5):
                outputs += follower.poll(0.1)
        finally:
            follower.close()
        assert follower.state.resyncs == 1
        resync = [i for i, o in enumerate(outputs) if o.kind == "snapshot" and o.resync]
        assert len(resync) == 1
        after = [o.line()["round"] for o in outputs[resync[0] + 1:] if o.kind == "round"]
        first = outputs[resync[0]].line()["round"]
        assert after and after == list(range(first + 1, first + 1 + len(after)))
        before = [o.line()["round"] for o in outputs[:resync[0]] if o.kind == "round"]
        assert first > (before[-1] if before else outputs[0].line()["round"]) + 1  # skipped

    def test_bad_frames_on_the_feed_are_dropped(self) -> None:
        import zmq

        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        feed = FeedClient(f"tcp://127.0.0.1:{port}", max_bytes=4096, ctx=ctx)
        try:
            assert feed.wait_connected(5)
            got: list[Any] = []
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:  # until the subscription is live
                pub.send(encode(FeedEvent(round=0, event="hello", data={})))
                got = feed.receive(0.05)
            pub.send(b"\x81\xa1v\x63")  # a map from protocol version 99
            pub.send(b"not msgpack at all")
            pub.send(encode(FeedRound(round=1, data={"blob": "x" * 10_000})))  # over max_bytes
            pub.send(encode(FeedRound(round=2, data={"ok": 1})))
            msgs: list[Any] = []
            while time.monotonic() < deadline and not any(m.round == 2 for m in msgs):
                msgs += feed.receive(0.2)
            assert [m.round for m in msgs if isinstance(m, FeedRound)] == [2]
            assert feed.dropped == 3 and feed.last_error
        finally:
            feed.close()
            pub.close(linger=0)
            ctx.term()

    def test_no_coordinator_waits_then_gives_up(self) -> None:
        port = free_port()
        out, err = io.StringIO(), io.StringIO()
        args = monitor_args("--jsonl", "--wait", "0.5", control=f"tcp://127.0.0.1:{port}",
                            feed=f"tcp://127.0.0.1:{free_port()}")
        assert run_monitor(args, out=out, err=err) == 4
        assert "waiting for coordinator at tcp://127.0.0.1:" in err.getvalue()
        assert out.getvalue() == ""

    def test_python_dash_m_runs_the_monitor_command(self) -> None:
        port = free_port()
        proc = subprocess.run(
            [sys.executable, "-m", "coordinator.ui.monitor", "--jsonl", "--wait", "0.5",
             "--control-port", str(port), "--feed-port", str(free_port())],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 4, proc.stderr
        assert f"waiting for coordinator at tcp://127.0.0.1:{port}" in proc.stderr
        assert "no coordinator answered" in proc.stderr and proc.stdout == ""

    def test_monitor_started_before_the_run_waits_for_it(self) -> None:
        ports = (free_port(), free_port(), free_port())
        proc = subprocess.Popen(
            [sys.executable, "-m", "coordinator.ui.cli", "monitor", "--jsonl", "--count", "5",
             "--control-port", str(ports[2]), "--feed-port", str(ports[1]), "--wait", "60"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        driver = None
        try:
            assert proc.stderr is not None
            assert "waiting for coordinator" in proc.stderr.readline()
            driver = Driver(ports)
            driver.start()
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            lines = jsonl(out)
            assert lines[0]["type"] == "snapshot"
            rounds = [line["round"] for line in lines if line["type"] == "round"]
            assert rounds == list(range(lines[0]["round"] + 1, lines[0]["round"] + 6))
        finally:
            proc.kill()
            if driver is not None:
                driver.stop.set()
                driver.join(10)


def read_pty(fd: int, until: Any, timeout_s: float) -> bytes:
    """Read a pty until ``until(bytes_so_far)`` holds, EOF, or ``timeout_s`` passes."""
    import select

    seen = b""
    deadline = time.monotonic() + timeout_s
    while not until(seen) and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_dashboard_in_a_terminal_exits_cleanly_on_ctrl_c(driver: Driver) -> None:
    import fcntl
    import struct
    import termios

    ep = driver.coord.endpoints
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 150, 0, 0))
    env = dict(os.environ, TERM="xterm-256color")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator.ui.cli", "monitor", "--connect", ep.control,
         "--feed-port", ep.feed.rpartition(":")[2]],
        cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    try:
        wanted = (b"node-03", b"train acc", b"topology", b"events (")
        seen = read_pty(master, lambda b: all(w in b for w in wanted), 30)
        assert all(w in seen for w in wanted), seen[-2000:]
        os.kill(proc.pid, signal.SIGINT)
        # Keep draining the pty meanwhile: the dashboard's last frames and its goodbye line
        # would block on a full pty buffer, and a blocked child cannot exit (a loaded host
        # leaves more frames unread).
        rest = read_pty(master, lambda b: proc.poll() is not None, 20)
        assert proc.wait(5) == 0
        rest += read_pty(master, lambda b: False, 1)
        assert b"Traceback" not in seen + rest
        assert b"rocknet monitor: running at round" in rest
    finally:
        proc.kill()
        os.close(master)


# --- a real testbed: `rocknet run` with node processes ------------------------------------

def wait_for_round(control: str, at_least: int, timeout_s: float) -> dict[str, Any]:
    """Ask ``status`` until the run has published ``at_least`` rounds."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            with ControlClient(control, timeout_s=1.0) as client:
                status = client.request("status").data
        except Exception:  # not bound yet, or busy starting: ask again
            continue
        if status.get("next_round", 0) >= at_least or status.get("phase") in ("finished", "failed"):
            return status
    raise AssertionError(f"the run did not reach round {at_least}: {status.get('phase')}")


def test_jsonl_attached_to_a_real_run(tmp_path: Path) -> None:
    node, feed, control = free_port(), free_port(), free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "coordinator.ui.cli", "run", "--nodes", "3", "--dataset", "GunPoint",
         "--epochs", "30", "--node-port", str(node), "--feed-port", str(feed),
         "--control-port", str(control), "--no-reference", "--quiet", "--out", str(tmp_path / "run")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"tcp://127.0.0.1:{control}"
        status = wait_for_round(endpoint, 30, 120)
        assert status["phase"] == "running", status.get("error")
        mon = subprocess.run(
            [sys.executable, "-m", "coordinator.ui.cli", "monitor", "--jsonl", "--count", "5",
             "--connect", endpoint, "--feed-port", str(feed), "--wait", "30"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert mon.returncode == 0, mon.stderr
        lines = jsonl(mon.stdout)
        snap = lines[0]
        assert snap["type"] == "snapshot" and snap["round"] >= 29 and snap["n_devices"] == 3
        assert [n["status"] for n in snap["nodes"]] == ["up"] * 3
        rounds = [line for line in lines if line["type"] == "round"]
        assert [r["round"] for r in rounds] == list(range(snap["round"] + 1, snap["round"] + 6))
        assert all(len(r["nodes"]) == 3 and len(r["decoded_ratio"]) == 3 for r in rounds)
        with ControlClient(endpoint) as client:
            assert client.request("stop").ok
        assert run.wait(60) in (0, 1)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            try:
                run.wait(30)
            except subprocess.TimeoutExpired:
                run.kill()
