"""Hostile input: malformed, oversized, misdirected and replayed frames against a live testbed.

Every frame a fuzzer sends is classified beforehand (by decoding it as the receiver would):
the coordinator's ``bad_frames``/``stale_frames`` and each node's must then grow by exactly
the predicted amounts, and the run must train bit for bit the model of an undisturbed run.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from coordinator.engine.link import SendStatus
from coordinator.service.zmq_link import ZmqLink

from coordinator.ui.control_client import ControlClient
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.engine.exchanges import plan_exchanges
from coordinator.service.server import Coordinator, CoordinatorOptions
from coordinator.service.run_setup import RunArgs, build_setup
from protocol.wire import codec
from protocol.wire.frames import (
    CONTROL_MAX_BYTES, DEFAULT_MAX_BYTES, PROTOCOL_VERSION, Bye, Control, ControlReply, Error,
    FeedEvent, FeedRound, Final, Heartbeat, Hello, Message, ProtocolError, Round, Rx, Stop, Tx,
    Welcome, decode, encode)

ARGS = RunArgs(dataset="GunPoint", nodes=2, epochs=2, num_features=2000)
NODE_SOCKET_FRAMES = 10_000  # to the coordinator's node socket, from strangers
CONTROL_FRAMES = 30_000  # to the control socket, from a client that never reads its replies
NODE_FRAMES = 10_000  # to each node process, between and inside its exchanges


# ---------------------------------------------------------------------------- frame material
def samples(n_devices: int = 2, n_classes: int = 2, length: int = 8) -> list[Message]:
    """One valid message of every type (small arrays), to mutate and to misdirect."""
    z = np.zeros
    return [
        Hello(name="fuzz", pid=1),
        Welcome(device=0, n_devices=1, config={"a": 1}, shard={"x": z(3, np.int8)}),
        Round(exchange=3, series_from=0, series_to=2, logits_from=0, logits_to=1),
        Tx(exchange=3, device=0, series_items=z(1, np.int32), series=z((1, length), np.int8),
           labels=z(1, np.int16), logits_items=z(1, np.int32), logits=z((1, n_classes), np.float32),
           stats={"k": [1, 2.5, None]}),
        Rx(exchange=3, series_items=z(1, np.int32), series=z((1, length), np.int8),
           labels=z(1, np.int16), logits_items=z(1, np.int32),
           logits=z((1, n_devices, n_classes), np.float32), logits_mask=z((1, n_devices), bool)),
        Heartbeat(device=0, exchange=1), Bye(device=0, reason="fuzz"), Stop(reason="fuzz"),
        Final(device=0, weights=z((n_classes, 4), np.float32), bias=z(0, np.float32)),
        Error(code="ram_budget", message="fuzz"), Control(command="status", args={}),
        ControlReply(ok=True, message="m", effective_round=0, data={}),
        FeedRound(round=0, data={"r": 1}), FeedEvent(round=0, event="e", data={}),
    ]


#: Byte strings that stress the msgpack scanner: invalid heads, huge declared lengths,
#: deep nesting, foreign ext codes, non-string keys.
NASTY = [b"", b"\xc1", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc6\x7f\xff\xff\xff",
         b"\xc9\x7f\xff\xff\xff\x01", b"\x91" * 200 + b"\xc0", b"\x81\x01\x02", b"\xd4\x05\x00",
         b"\x82\xa1v\x01\xa1t\xa5HELLO", b"\x82\xa1v\x01\xa1t\xa4NOPE", b"\x90", b"\xa3abc"]


def wrong_version(msg: Message) -> bytes:
    frame = {"v": PROTOCOL_VERSION + 1, "t": msg.TYPE}
    frame.update({f.name: getattr(msg, f.name) for f in msg._FIELDS})
    return codec.pack(frame)


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """One random corruption of ``frame``."""
    data = bytearray(frame)
    kind = rng.randrange(8)
    if kind == 0 and data:  # flip bits
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncate
        del data[rng.randrange(len(data) + 1):]
    elif kind == 2:  # trailing garbage
        data += rng.randbytes(rng.randint(1, 16))
    elif kind == 3 and data:  # a msgpack head byte in a random place
        data[rng.randrange(len(data))] = rng.choice([0xc1, 0xdd, 0xdf, 0xc6, 0xc9, 0xd4, 0x80, 0x9f])
    elif kind == 4:  # bytes inserted
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.randbytes(rng.randint(1, 8))
    elif kind == 5:
        data = bytearray(frame) * 2  # the frame twice
    elif kind == 6:
        return rng.randbytes(rng.randint(0, 300))
    else:
        return rng.choice(NASTY)
    return bytes(data)


def decoded(raw: bytes, **kw: Any) -> Message | None:
    try:
        return decode(raw, **kw)
    except ProtocolError:
        return None


# ---------------------------------------------------------------------------- the coordinator's view
def coordinator_outcome(raw: bytes, members: set[str]) -> str | None:
    """What a running coordinator counts for ``raw`` from a peer that is not a member."""
    msg = decoded(raw)
    if msg is None:
        return "bad"
    if isinstance(msg, Hello):
        if msg.name in members:
            return None  # that is a rejoin, not garbage: never sent
        return "bad" if msg.version != PROTOCOL_VERSION else "stale"  # the run is full
    return "stale"  # anything from a peer that never registered


class NodeModel:
    """What node process ``identity`` has seen, to predict how it counts the next frame."""

    def __init__(self, n_devices: int, n_classes: int, length: int) -> None:
        self.shape = (n_devices, n_classes, length)
        self.last = -1
        self.pending: int | None = None
        self.rounds: list[Round] = []
        self.rxs: list[Rx] = []
        self.predicted = {"bad": 0, "stale": 0}
        self.sent = 0

    def real(self, msg: Message) -> None:
        if isinstance(msg, Round):
            self.last = self.pending = msg.exchange
            self.rounds.append(msg)
        elif isinstance(msg, Rx):
            self.pending = None
            self.rxs.append(msg)

    def outcome(self, raw: bytes) -> str | None:
        """bad / stale as node/process.py counts it, None for a frame the node would obey."""
        msg = decoded(raw)
        if msg is None:
            return "bad"
        if isinstance(msg, (Welcome, Stop, Heartbeat, Error)):
            return None  # the coordinator's commands: only it may send them
        if isinstance(msg, Round):  # the last one again is a legitimate re-send
            return "stale" if msg.exchange < self.last else None
        if isinstance(msg, Rx):
            if msg.exchange != self.pending:
                return "stale"
            n, c, length = self.shape
            labels_ok = not len(msg.labels) or 0 <= msg.labels.min() <= msg.labels.max() < c
            if msg.series.shape[1] != length or msg.logits.shape[1:] != (n, c) or not labels_ok:
                return "bad"
            return None
        return "bad"  # a message a node never receives


def node_garbage(rng: random.Random, model: NodeModel, material: list[bytes]) -> list[bytes]:
    """One hostile message (1 or 2 parts) for a node, with its outcome counted in ``model``."""
    n, c, length = model.shape
    while True:
        kind = rng.randrange(6)
        if kind == 0 and len(model.rounds) > 1:  # a replayed ROUND of an earlier exchange
            parts = [encode(rng.choice(model.rounds[:-1]))]
        elif kind == 1 and model.rxs:  # a replayed RX, or one for an exchange yet to come
            rx = rng.choice(model.rxs)
            if rng.random() < 0.5:
                rx = dataclasses.replace(rx, exchange=model.last + rng.randint(1, 1000))
            parts = [encode(rx)]
        elif kind == 2 and model.pending is not None:  # the pending RX with another run's shapes
            z = np.zeros
            bad_n = rng.choice([n + 1, n, n])
            bad_len = length if bad_n != n else length + rng.randint(1, 5)
            parts = [encode(Rx(
                exchange=model.pending, series_items=z(1, np.int32), series=z((1, bad_len), np.int8),
                labels=np.full(1, rng.choice([0, c, -3]), np.int16), logits_items=z(0, np.int32),
                logits=z((0, bad_n, c), np.float32), logits_mask=z((0, bad_n), bool)))]
        elif kind == 3:  # multipart garbage: each part is a frame of its own to a DEALER
            parts = [mutate(rng, rng.choice(material)) for _ in range(2)]
        else:
            parts = [mutate(rng, rng.choice(material)) if kind == 4 else rng.choice(material)]
        outcomes = [model.outcome(p) for p in parts]
        if None not in outcomes:
            for o in outcomes:
                model.predicted[o] += 1
            model.sent += len(parts)
            return parts


# ---------------------------------------------------------------------------- the live run
def launch(tmp_path: Path, name: str) -> LaunchOptions:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0)
    return LaunchOptions(out_dir=tmp_path / name, coordinator=coord, progress=False, reference=False)


class Fuzzer:
    """Strangers flooding the coordinator's sockets from a thread, while the run goes on."""

    def __init__(self, coord: Coordinator, members: set[str], seed: int) -> None:
        self.coord = coord
        self.members = members
        self.rng = random.Random(seed)
        self.predicted = {"bad": 0, "stale": 0}
        self.sent = {"nodes": 0, "control": 0, "oversize": 0}
        self.replies: list[ControlReply] = []
        self.error: str | None = None
        self.rate_hz: dict[str, float] = {}
        self.done = threading.Event()
        self.release = threading.Event()
        self.sockets: list[zmq.Socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ctx = zmq.Context()
        try:
            self._flood(ctx)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = repr(exc)
        finally:
            self.done.set()
            # ZeroMQ drops what a disconnected peer left unread: stay until it is counted.
            self.release.wait(120)
            ctx.destroy(linger=0)

    def _dealer(self, ctx: zmq.Context, endpoint: str) -> zmq.Socket:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.connect(endpoint)
        self.sockets.append(sock)  # alive until released: a collected socket drops its queue
        return sock

    def _flood(self, ctx: zmq.Context) -> None:
        ep = self.coord.endpoints
        material = [encode(m) for m in samples()] + [wrong_version(m) for m in samples()]
        material += [encode(Hello(name=f"stranger-{i}", pid=i)) for i in range(3)]
        material += [encode(Tx(  # a TX claiming device 0, for the running and a future exchange
            exchange=x, device=0, series_items=np.zeros(0, np.int32),
            series=np.zeros((0, 150), np.int8), labels=np.zeros(0, np.int16),
            logits_items=np.zeros(0, np.int32), logits=np.zeros((0, 2), np.float32)))
            for x in (0, 1, 5, 10**6)]
        nodes = [self._dealer(ctx, ep.nodes) for _ in range(4)]
        started = time.perf_counter()
        while self.sent["nodes"] < NODE_SOCKET_FRAMES:
            parts = ([mutate(self.rng, self.rng.choice(material))] if self.rng.random() < 0.6
                     else [self.rng.choice(material)])
            if self.rng.random() < 0.05:
                parts.append(self.rng.choice(material))  # multipart: one bad frame
            outcome = "bad" if len(parts) > 1 else coordinator_outcome(parts[0], self.members)
            if outcome is None:
                continue
            self.rng.choice(nodes).send_multipart(parts)
            self.predicted[outcome] += 1
            self.sent["nodes"] += len(parts)
        self.rate_hz["nodes_send"] = NODE_SOCKET_FRAMES / (time.perf_counter() - started)
        control = self._dealer(ctx, ep.control)  # never reads: replies must not block the run
        control.setsockopt(zmq.RCVHWM, 1)
        control_material = [m for m in material if decoded(m, max_bytes=CONTROL_MAX_BYTES,
                                                           expect=Control) is None]
        started = time.perf_counter()
        while self.sent["control"] < CONTROL_FRAMES:
            raw = mutate(self.rng, self.rng.choice(material))
            if decoded(raw, max_bytes=CONTROL_MAX_BYTES, expect=Control) is not None:
                continue  # a real command (mutated "status"): not garbage
            parts = [raw] if self.rng.random() < 0.9 else [raw, self.rng.choice(control_material)]
            control.send_multipart(parts)
            self.predicted["bad"] += 1
            self.sent["control"] += len(parts)
        self.rate_hz["control_send"] = CONTROL_FRAMES / (time.perf_counter() - started)
        # Oversized frames: libzmq drops the connection (MAXMSGSIZE), nothing reaches the run.
        big = self._dealer(ctx, ep.nodes)
        big.send(b"\x00" * (DEFAULT_MAX_BYTES + 1))
        huge_ctl = self._dealer(ctx, ep.control)
        huge_ctl.send(b"\x00" * (CONTROL_MAX_BYTES + 1))
        self.sent["oversize"] = 2
        # Well-formed commands with hostile arguments: answered with ok=False, nothing changes.
        with ControlClient(ep.control, timeout_s=60) as client:
            for command, args in [("warp-drive", {}), ("loss", {"p": "x"}), ("loss", {"p": 2.0}),
                                  ("link-down", {"a": float("inf"), "b": 1}),
                                  ("jam", {"nodes": [0], "rounds": float("inf")}),
                                  ("node-down", {"node": 10**12}), ("burst", {"p": 0.1})]:
                self.replies.append(client.request(command, args))
        # OverflowError (int(inf)) escaped the command handler: counted as bad by the server.
        self.predicted["bad"] += 2


@pytest.mark.usefixtures("warm_numba")
def test_live_coordinator_and_nodes_survive_hostile_frames_and_train_the_same_model(tmp_path: Path) -> None:
    plain = run_testbed(ARGS, launch(tmp_path, "plain"))
    state: dict[str, Any] = {"models": {}, "paused_by_test": False}
    lock = threading.Lock()
    rng = random.Random(8)
    setup = build_setup(ARGS)
    cfg = setup.config
    hooks_per_node = 2 * len(plan_exchanges(setup.stream, lockstep=False))  # ROUND + RX each
    per_hook = NODE_FRAMES // hooks_per_node + 1
    node_material = [encode(m) for m in samples(cfg.n_devices, cfg.n_classes, cfg.series_length)]
    node_material += [wrong_version(m) for m in samples()]

    class FuzzingLink:
        """The real ZeroMQ link, with garbage sent right behind every real ROUND and RX."""

        def __init__(self, inner: ZmqLink) -> None:
            self.inner = inner

        def send(self, identity: bytes, msg: Any) -> SendStatus:
            status = self.inner.send(identity, msg)
            if status is not SendStatus.SENT or not isinstance(msg, (Round, Rx)):
                return status
            model = state["models"].setdefault(
                identity, NodeModel(cfg.n_devices, cfg.n_classes, cfg.series_length))
            model.real(msg)
            for _ in range(per_hook):
                self.inner.sock.send_multipart([identity, *node_garbage(rng, model, node_material)],
                                               zmq.NOBLOCK)
            return status

        def poll(self, timeout_s: float) -> Any:
            return self.inner.poll(timeout_s)

        def quiet(self) -> bool:
            return self.inner.quiet()

        def close(self) -> None:
            self.inner.close()

    def started(coord: Coordinator, backend: Any) -> None:
        state["coord"] = coord
        assert isinstance(coord.engine.link, ZmqLink)
        coord.engine.link = FuzzingLink(coord.engine.link)  # the engine's link seam, fuzzed

    def on_round(record: dict[str, Any]) -> None:
        coord = state["coord"]
        if "fuzzer" not in state:  # registration is over: the strangers start
            members = {e.name for e in coord.registry.entries()}
            state["fuzzer"] = Fuzzer(coord, members, seed=5)
            state["fuzzer"].thread.start()
            state["t0"] = time.perf_counter()
        with lock:  # hold the run near its end until every stranger's frame is counted
            if record["round"] >= 150 and not state.get("absorbed") and not coord.state.paused:
                state["paused_by_test"] = True
                coord.pause()

    def absorb() -> None:
        fuzzer: Fuzzer = state["fuzzer"]
        fuzzer.done.wait(300)
        coord = state["coord"]
        deadline = time.monotonic() + 60  # well within the nodes' idle timeout (120 s)
        while time.monotonic() < deadline and (
                coord.state.bad_frames < fuzzer.predicted["bad"]
                or coord.state.stale_frames < fuzzer.predicted["stale"]):
            time.sleep(0.05)  # polling another thread's counters, not waiting for time to pass
        state["absorb_s"] = time.perf_counter() - state["t0"]
        state["counted"] = (coord.state.bad_frames, coord.state.stale_frames)
        fuzzer.release.set()
        with lock:
            state["absorbed"] = True
            if state["paused_by_test"]:
                coord.resume()

    def started_all(coord: Coordinator, backend: Any) -> None:
        started(coord, backend)
        threading.Thread(target=lambda: (_wait_for(state, "fuzzer"), absorb()), daemon=True).start()

    summary = run_testbed(ARGS, launch(tmp_path, "fuzzed"), on_started=started_all, on_round=on_round)
    fuzzer: Fuzzer = state["fuzzer"]
    coord: Coordinator = state["coord"]
    assert fuzzer.error is None, fuzzer.error
    assert state["counted"] == (fuzzer.predicted["bad"], fuzzer.predicted["stale"])

    # Both sides kept running and the run finished with every node.
    assert summary["phase"] == "finished" and summary["rounds"] == summary["rounds_planned"]
    assert all(n["final_collected"] and n["status"] == "up" for n in summary["per_node"])
    assert plain["bad_frames"] == plain["stale_frames"] == 0
    # Every frame sent to the coordinator was counted once, as predicted.
    assert fuzzer.sent["nodes"] >= NODE_SOCKET_FRAMES and fuzzer.sent["control"] >= CONTROL_FRAMES
    assert (summary["bad_frames"], summary["stale_frames"]) == (
        fuzzer.predicted["bad"], fuzzer.predicted["stale"])
    # Hostile commands were refused and changed nothing.
    assert [r.ok for r in fuzzer.replies] == [False] * len(fuzzer.replies)
    assert summary["faults"] == plain["faults"]
    # Every frame sent to a node was counted once, as predicted; the node answered the rest.
    models = state["models"]
    assert len(models) == ARGS.nodes
    for identity, model in models.items():
        entry = coord.registry.by_identity(identity)
        stats = coord.finals[entry.device].stats
        assert model.sent >= NODE_FRAMES
        assert (stats["bad_frames"], stats["stale_frames"]) == (
            model.predicted["bad"], model.predicted["stale"]), entry.name
    # The result is the undisturbed run's, bit for bit.
    assert summary["test_accuracy"] == plain["test_accuracy"]
    with np.load(tmp_path / "plain" / "weights.npz") as a, np.load(tmp_path / "fuzzed" / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
    print(f"\nfuzz: {fuzzer.sent} frames to the coordinator, "
          f"{sum(m.sent for m in models.values())} to {len(models)} nodes; "
          f"send rates {fuzzer.rate_hz}; all counted within {state['absorb_s']:.1f} s "
          f"of the fuzzer's start; run wall {summary['wall_time_s']:.1f} s "
          f"(undisturbed {plain['wall_time_s']:.1f} s)")


def _wait_for(state: dict[str, Any], key: str) -> None:
    while key not in state:
        time.sleep(0.01)


# ---------------------------------------------------------------------------- forged frames
class RawNode:
    """A DEALER that registers like a node and answers ROUNDs with what the test says."""

    def __init__(self, ctx: zmq.Context, endpoint: str, name: str | None) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if name is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, name.encode())
        self.sock.connect(endpoint)
        self.device = -1
        if name is not None:
            self.sock.send(encode(Hello(name=name, pid=1)))

    def recv(self, kind: type[Message] | None = None, timeout_s: float = 30.0) -> Message:
        assert self.sock.poll(int(timeout_s * 1000)), "nothing arrived"
        msg = decode(self.sock.recv())
        if isinstance(msg, Welcome):
            self.device = msg.device
        assert kind is None or isinstance(msg, kind), msg
        return msg

    def send(self, msg: Message) -> None:
        self.sock.send(encode(msg))


def tx_for(round_msg: Round, device: int, owner: np.ndarray, value: int, length: int,
           claim: int | None = None, exchange: int | None = None) -> Tx:
    """An honest-looking TX: the series ``device`` owns in the ROUND, all bytes ``value``."""
    items = [t for t in range(round_msg.series_from, round_msg.series_to) if owner[t] == device]
    return Tx(exchange=round_msg.exchange if exchange is None else exchange,
              device=device if claim is None else claim,
              series_items=np.asarray(items, np.int32),
              series=np.full((len(items), length), value, np.int8),
              labels=np.zeros(len(items), np.int16), logits_items=np.zeros(0, np.int32),
              logits=np.zeros((0, 2), np.float32))


def test_forged_and_misdirected_frames_from_peers_are_counted_and_dropped() -> None:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=2000))
    coord = Coordinator(setup, CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                  deadline_s=60, final_timeout_s=5))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            coord.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ctx = zmq.Context()
    length, owner = setup.config.series_length, setup.stream.owner
    try:
        a = RawNode(ctx, coord.endpoints.nodes, "node-a")
        a.recv(Welcome)
        b = RawNode(ctx, coord.endpoints.nodes, "node-b")
        b.recv(Welcome)
        stranger = RawNode(ctx, coord.endpoints.nodes, None)  # never said HELLO
        first_a, first_b = a.recv(Round), b.recv(Round)
        assert isinstance(first_a, Round) and isinstance(first_b, Round)
        b.send(tx_for(first_b, b.device, owner, 0, length))
        # node-a claims node-b's series (all 77), answers an exchange yet to come, and sends
        # a FINAL for node-b; the stranger sends a TX claiming node-a's id and an ERROR that
        # would abort the run if it came from a node.
        a.send(tx_for(first_a, b.device, owner, 77, length, claim=b.device))
        a.send(tx_for(first_a, a.device, owner, 5, length, exchange=first_a.exchange + 5))
        a.send(Final(device=b.device, weights=np.full((2, 3), 77, np.float32),
                     bias=np.zeros(0, np.float32)))
        stranger.send(tx_for(first_a, a.device, owner, 77, length))
        stranger.send(Error(code="ram_budget", message="abort, please"))
        a.send(tx_for(first_a, a.device, owner, 1, length))
        assert stranger.recv(Error).code == "unknown_node"  # told to say HELLO, nothing else
        rx_a, rx_b = a.recv(Rx), b.recv(Rx)
        assert isinstance(rx_a, Rx) and isinstance(rx_b, Rx)
        # What the air delivered is what the devices' own sockets sent, never the forgeries.
        b_items = [t for t in range(first_a.series_from, first_a.series_to) if owner[t] == b.device]
        assert sorted(rx_a.series_items.tolist()) == b_items and not rx_a.series.any()
        assert (rx_b.series == 1).all() and len(rx_b.series) > 0
        deadline = time.monotonic() + 30
        while (coord.state.bad_frames, coord.state.stale_frames) != (2, 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (coord.state.bad_frames, coord.state.stale_frames) == (2, 3)
        coord.state.stop_reason = "test over"
        waiting, deadline = [a, b], time.monotonic() + 60
        while waiting:  # answer what may still come (one more exchange), then leave
            assert time.monotonic() < deadline, "no STOP"
            for node in [n for n in waiting if n.sock.poll(50)]:
                msg = node.recv()
                if isinstance(msg, Round):
                    node.send(tx_for(msg, node.device, owner, 0, length))
                elif isinstance(msg, Stop):
                    node.send(Bye(device=node.device, reason="test"))
                    waiting.remove(node)
        thread.join(30)
        assert not thread.is_alive() and not failure, failure
        assert coord.state.phase == "finished" and coord.finals == {}
        assert (coord.state.bad_frames, coord.state.stale_frames) == (2, 3)
    finally:
        coord.state.stop_reason = coord.state.stop_reason or "test over"
        thread.join(30)
        ctx.destroy(linger=0)
        coord.close()


def test_a_control_client_that_never_reads_cannot_wedge_the_coordinator() -> None:
    """Replies to a client that does not read are dropped (they used to block the run)."""
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=2000))
    coord = Coordinator(setup, CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                                  register_timeout_s=300))
    thread = threading.Thread(target=lambda: _swallow(coord.wait_for_nodes), daemon=True)
    thread.start()
    ctx = zmq.Context()
    try:
        flood = ctx.socket(zmq.DEALER)
        flood.setsockopt(zmq.RCVHWM, 1)
        flood.setsockopt(zmq.SNDHWM, 0)
        flood.connect(coord.endpoints.control)
        n = 40_000  # about 27,000 unread replies filled the queues and blocked the coordinator
        for _ in range(n):
            flood.send(b"\xc1")
        with ControlClient(coord.endpoints.control, timeout_s=60) as client:
            # Served in turn with the flood (fair queueing): ask until all of it is counted.
            deadline = time.monotonic() + 120
            while (reply := client.request("status")).data["bad_frames"] < n:
                assert time.monotonic() < deadline
        assert reply.ok and reply.data["bad_frames"] == n
        assert thread.is_alive()
    finally:
        coord.state.stop_reason = "test over"
        thread.join(30)
        ctx.destroy(linger=0)
        coord.close()


def _swallow(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - the test stops the coordinator this way
        pass
