"""CURVE authentication: key files, who each socket admits, and a live run with strangers."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
import zmq.auth

from coordinator.ui.control_client import ControlClient, ControlTimeout
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.server import CoordinatorOptions
from coordinator.service.run_setup import RunArgs
from node.process import NodeOptions, NodeProcess
from coordinator.ui import keys_cli
from protocol.net import curve, keys
from protocol.wire.frames import ControlReply, Error, Hello, decode, encode

NAMES = ["node-00", "node-01", "node-02"]
SocketSetup = Callable[[zmq.Socket], None]


@pytest.fixture()
def keydir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    keys.init_keys(directory, NAMES)
    return directory


def stranger_keys(keydir: Path) -> tuple[SocketSetup, bytes]:
    """A well-formed key pair the coordinator has never seen (and its public key)."""
    public, secret = zmq.curve_keypair()
    server = keys.load_public(keydir / "coordinator.key")

    def setup(sock: zmq.Socket) -> None:
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server, public, secret

    return setup, public


def node_keys(keydir: Path, name: str) -> SocketSetup:
    return lambda sock: curve.apply_client_keys(sock, keydir, name)


# ---------------------------------------------------------------------------- key files
def test_init_writes_the_documented_layout_with_private_secrets(keydir: Path) -> None:
    expected = {"coordinator.key", "coordinator.key_secret", "operator.key", "operator.key_secret"}
    expected |= {f"nodes/{n}.key" for n in NAMES} | {f"nodes/{n}.key_secret" for n in NAMES}
    files = {str(p.relative_to(keydir)) for p in keydir.rglob("*") if p.is_file()}
    assert files == expected
    for name in files:
        mode = stat.S_IMODE((keydir / name).stat().st_mode)
        assert mode == (0o600 if name.endswith("_secret") else 0o644), name
    publics = {keys.load_public(keydir / n) for n in files if n.endswith(".key")}
    assert len(publics) == 2 + len(NAMES)  # every party has its own key
    for name in NAMES:  # a secret file holds the same public key as its .key
        public, secret = keys.load_pair(keydir / "nodes" / f"{name}.key_secret")
        assert public == keys.load_public(keydir / "nodes" / f"{name}.key") and len(secret) == 40


def test_init_refuses_to_overwrite_and_ensure_keys_adds_only_what_is_missing(keydir: Path) -> None:
    before = keys.load_public(keydir / "nodes" / "node-00.key")
    with pytest.raises(keys.CurveKeyError, match="exist already.*rocknet keys add"):
        keys.init_keys(keydir, ["node-00"])
    assert keys.load_public(keydir / "nodes" / "node-00.key") == before
    assert keys.ensure_keys(keydir, ["node-00", "node-07"]) == ["node-07"]
    assert keys.load_public(keydir / "nodes" / "node-00.key") == before
    assert (keydir / "nodes" / "node-07.key_secret").exists()
    keys.init_keys(keydir, ["node-00"], force=True)
    assert keys.load_public(keydir / "nodes" / "node-00.key") != before


@pytest.mark.parametrize("name", ["../evil", "", ".hidden", "a/b", "coordinator", "x" * 65])
def test_names_that_cannot_be_key_files_are_refused_before_anything_is_written(
        tmp_path: Path, name: str) -> None:
    with pytest.raises(keys.CurveKeyError, match="cannot name a key file"):
        keys.init_keys(tmp_path / "k", ["node-00", name])
    assert not (tmp_path / "k").exists()


def test_rocknet_keys_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "k"
    assert keys_cli.main(["init", str(directory), "--nodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "node node-00" in out and "node node-01" in out
    fp = keys.fingerprint(keys.load_public(directory / "nodes" / "node-01.key"))
    assert fp in out  # the fingerprint the coordinator logs on refusal
    assert keys_cli.main(["init", str(directory), "--nodes", "2"]) == 2
    assert "rocknet keys add" in capsys.readouterr().err
    assert keys_cli.main(["add", str(directory), "edge-9"]) == 0
    assert keys_cli.main(["show", str(directory)]) == 0
    assert "node edge-9" in capsys.readouterr().out


def test_missing_keys_are_errors_that_name_the_fix(tmp_path: Path, keydir: Path) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    try:
        with pytest.raises(keys.CurveKeyError, match=r"node 'ghost'.*rocknet keys init"):
            curve.apply_client_keys(sock, keydir, "ghost")
        with pytest.raises(keys.CurveKeyError, match="rocknet keys init"):
            curve.apply_operator_keys(sock, tmp_path)
        with pytest.raises(keys.CurveKeyError, match="rocknet keys init"):
            curve.apply_server_keys(zmq.Context.instance(), [sock], tmp_path)
    finally:
        sock.close(linger=0)
    # The node process fails at start, before it connects anywhere.
    with pytest.raises(keys.CurveKeyError, match="ghost.key_secret"):
        NodeProcess(NodeOptions(connect="tcp://127.0.0.1:9", name="ghost", curve_dir=keydir))


def test_key_files_read_without_zmq_agree_with_pyzmq(keydir: Path) -> None:
    """keys.py reads certificates and Z85 itself: it must read exactly what pyzmq reads."""
    from zmq.utils import z85

    for path in [keydir / "coordinator.key_secret", keydir / "nodes" / "node-01.key"]:
        public, secret = zmq.auth.load_certificate(path)
        assert keys.load_public(path) == public
        assert keys.z85_decode(public) == z85.decode(public)
    assert keys.load_pair(keydir / "operator.key_secret") == zmq.auth.load_certificate(
        keydir / "operator.key_secret")
    with pytest.raises(ValueError, match="not a Z85 character"):
        keys.z85_decode(b"abcd~")


def test_a_truncated_key_file_is_an_error_that_names_the_fix(keydir: Path) -> None:
    path = keydir / "nodes" / "node-00.key"
    path.write_text(path.read_text().replace('public-key = "', 'public-key = "x'))
    with pytest.raises(keys.CurveKeyError, match="malformed CURVE key.*rocknet keys init"):
        keys.load_public(path)
    (keydir / "operator.key").write_text("# nothing here\n")
    with pytest.raises(keys.CurveKeyError, match="no public key.*rocknet keys init"):
        keys.load_public(keydir / "operator.key")


def test_hello_must_carry_the_name_of_its_key() -> None:
    assert curve.hello_refusal(None, "node-00") is None  # CURVE off
    assert curve.hello_refusal("node:node-00", "node-00") is None
    why = curve.hello_refusal("node:node-01", "node-00")
    assert why is not None and "node-01" in why


# ---------------------------------------------------------------------------- sockets
class Server:
    """The coordinator's two ROUTERs made CURVE servers by apply_server_keys."""

    def __init__(self, keydir: Path) -> None:
        self.ctx = zmq.Context()
        self.nodes = self.ctx.socket(zmq.ROUTER)
        self.ctl = self.ctx.socket(zmq.ROUTER)
        self.auth = curve.apply_server_keys(self.ctx, [self.nodes, self.ctl], keydir)
        self.endpoint = {}
        for role, sock in (("nodes", self.nodes), ("control", self.ctl)):
            sock.bind("tcp://127.0.0.1:*")
            self.endpoint[role] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.clients: list[zmq.Socket] = []

    def client(self, role: str, setup: SocketSetup | None) -> tuple[zmq.Socket, zmq.Socket]:
        """A DEALER connected to ``role`` and the monitor of its handshake."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        if setup is not None:
            setup(sock)
        monitor = sock.get_monitor_socket(curve.HANDSHAKE_EVENTS)
        sock.connect(self.endpoint[role])
        self.clients += [sock, monitor]
        return sock, monitor

    def close(self) -> None:
        for sock in self.clients:
            sock.close(linger=0)
        self.nodes.close(linger=0)
        self.ctl.close(linger=0)
        self.auth.stop()
        self.ctx.term()


@pytest.fixture()
def server(keydir: Path) -> Iterator[Server]:
    srv = Server(keydir)
    yield srv
    srv.close()


@pytest.mark.parametrize("role, who, outcome", [
    ("nodes", "node-01", "ok"),
    ("control", "operator", "ok"),
    ("nodes", "operator", "refused"),   # the operator cannot join as a node
    ("control", "node-01", "refused"),  # a node cannot send control commands
    ("nodes", "stranger", "refused"),
    ("control", "stranger", "refused"),
    ("nodes", "nobody", "mismatch"),    # no CURVE at all
    ("control", "nobody", "mismatch"),
])
def test_each_key_is_admitted_only_on_its_own_socket(
        server: Server, keydir: Path, role: str, who: str, outcome: str) -> None:
    stranger, stranger_public = stranger_keys(keydir)
    setups: dict[str, SocketSetup | None] = {
        "node-01": node_keys(keydir, "node-01"), "operator": curve.operator_curve(keydir),
        "stranger": stranger, "nobody": None}
    publics = {"node-01": keys.load_public(keydir / "nodes" / "node-01.key"),
               "operator": keys.load_public(keydir / "operator.key"), "stranger": stranger_public}
    sock, monitor = server.client(role, setups[who])
    assert curve.handshake_result(monitor, timeout_s=10) == outcome
    try:
        sock.send(b"hello", zmq.NOBLOCK)
    except zmq.Again:  # a refused DEALER has no peer to queue for
        assert outcome != "ok"
    target = server.nodes if role == "nodes" else server.ctl
    if outcome == "ok":
        assert target.poll(10_000)
        frames = target.recv_multipart(copy=False)
        assert frames[1].bytes == b"hello"
        assert curve.user_of(frames[1]) == ("node:node-01" if who == "node-01" else "operator:operator")
    else:
        assert not target.poll(200)  # nothing gets through a failed handshake
    if outcome == "refused":
        domain = curve.NODE_DOMAIN if role == "nodes" else curve.OPERATOR_DOMAIN
        assert server.auth.refused[(domain, keys.fingerprint(publics[who]))] >= 1


@pytest.mark.parametrize("who, outcome", [("operator", "ok"), ("node-01", "refused"),
                                          ("nobody", "mismatch")])
def test_a_curve_feed_publishes_to_the_operator_only(keydir: Path, who: str, outcome: str) -> None:
    """The monitor feed is plain by default; given to apply_server_keys it is operator-only."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    nodes = ctx.socket(zmq.ROUTER)
    auth = curve.apply_server_keys(ctx, [nodes, pub], keydir)
    pub.bind("tcp://127.0.0.1:*")
    sub = ctx.socket(zmq.SUB)
    setups = {"operator": curve.operator_curve(keydir), "node-01": node_keys(keydir, "node-01"),
              "nobody": None}
    if setups[who] is not None:
        setups[who](sub)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    monitor = sub.get_monitor_socket(curve.HANDSHAKE_EVENTS)
    try:
        sub.connect(pub.getsockopt_string(zmq.LAST_ENDPOINT))
        assert curve.handshake_result(monitor, timeout_s=10) == outcome
        received = False
        for _ in range(50):  # a SUB joins asynchronously: publish until one arrives
            pub.send(b"round")
            if sub.poll(20):
                received = sub.recv() == b"round"
                break
        assert received == (outcome == "ok")
    finally:
        for sock in (monitor, sub, pub, nodes):
            sock.close(linger=0)
        auth.stop()
        ctx.term()


def test_a_node_key_added_while_the_coordinator_runs_is_admitted(server: Server, keydir: Path) -> None:
    keys.ensure_keys(keydir, ["late-node"])
    _, monitor = server.client("nodes", node_keys(keydir, "late-node"))
    assert curve.handshake_result(monitor, timeout_s=10) == "ok"


def test_control_client_takes_the_operator_key_from_the_environment(
        server: Server, keydir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.ENV_CURVE_DIR, str(keydir))
    answer: dict[str, Any] = {}

    def coordinator() -> None:  # one request, one reply, as the coordinator does
        if server.ctl.poll(10_000):
            frames = server.ctl.recv_multipart(copy=False)
            answer["user"] = curve.user_of(frames[1])
            server.ctl.send_multipart([frames[0].bytes, encode(ControlReply(
                ok=True, message="status", effective_round=0, data={}))])

    thread = threading.Thread(target=coordinator)
    thread.start()
    with ControlClient(server.endpoint["control"], timeout_s=10) as client:
        reply = client.request("status")
    thread.join()
    assert reply.ok and answer["user"] == "operator:operator"


# ---------------------------------------------------------------------------- a live run
def launch(tmp_path: Path, name: str, curve_dir: Path | None) -> LaunchOptions:
    coord = CoordinatorOptions(node_port=0, feed_port=0, control_port=0, curve_dir=curve_dir)
    return LaunchOptions(out_dir=tmp_path / name, coordinator=coord, progress=False, reference=False)


@pytest.mark.usefixtures("warm_numba")
def test_strangers_are_refused_and_the_authenticated_run_trains_the_same_model(
        tmp_path: Path, keydir: Path) -> None:
    args = RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=2000)
    plain = run_testbed(args, launch(tmp_path, "plain", None))
    stranger, stranger_public = stranger_keys(keydir)
    rogues: dict[str, tuple[zmq.Socket, zmq.Socket]] = {}
    control: dict[str, Any] = {}
    state: dict[str, Any] = {}
    ctx = zmq.Context()

    def rogue(name: str, setup: SocketSetup | None, hello_as: str, routing_id: str | None = None) -> None:
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        if routing_id is not None:
            sock.setsockopt(zmq.ROUTING_ID, routing_id.encode())
        if setup is not None:
            setup(sock)
        monitor = sock.get_monitor_socket(curve.HANDSHAKE_EVENTS)
        sock.connect(state["coord"].endpoints.nodes)
        sock.send(encode(Hello(name=hello_as, pid=1)))
        rogues[name] = (sock, monitor)

    def operator_session() -> None:
        """Pause the run, try control commands without the operator key, resume."""
        endpoint = state["coord"].endpoints.control
        try:
            with ControlClient(endpoint, timeout_s=30, curve=curve.operator_curve(keydir)) as op:
                control["pause"] = op.request("pause").ok
                for who, setup in (("no key", lambda s: None), ("node key", node_keys(keydir, "node-00")),
                                   ("stranger", stranger)):
                    try:
                        with ControlClient(endpoint, timeout_s=1.5, curve=setup) as c:
                            control[who] = c.request("stop", {"reason": f"stopped by {who}"}).message
                    except ControlTimeout:
                        control[who] = "timeout"
                control["status"] = op.request("status").data
                control["resume"] = op.request("resume").ok
        except Exception as exc:  # noqa: BLE001 - reported by the test
            control["error"] = repr(exc)

    def started(coord: Any, backend: Any) -> None:
        state["coord"] = coord
        rogue("no key", None, "rogue-a")
        rogue("stranger", stranger, "rogue-b")
        rogue("operator key", curve.operator_curve(keydir), "rogue-c")
        # A registered node's key under another routing id, claiming a member's name.
        rogue("impostor", node_keys(keydir, "node-00"), "node-01", routing_id="impostor")
        # A valid key that is not in this run, claiming a member's name.
        rogue("spare key", node_keys(keydir, "node-02"), "node-00", routing_id="node-02")
        state["thread"] = threading.Thread(target=operator_session)
        state["thread"].start()

    try:
        summary = run_testbed(args, launch(tmp_path, "curve", keydir), on_started=started)
    finally:
        if "thread" in state:
            state["thread"].join()
        outcomes = {name: curve.handshake_result(mon, 10) for name, (_, mon) in rogues.items()}
        received = {name: decode(s.recv()) if s.poll(0) else None for name, (s, _) in rogues.items()}
        for sock, mon in rogues.values():
            sock.close(linger=0)
            mon.close(linger=0)
        ctx.term()

    # The strangers never got in ...
    assert outcomes == {"no key": "mismatch", "stranger": "refused", "operator key": "refused",
                        "impostor": "ok", "spare key": "ok"}
    assert {n: m for n, m in received.items() if n != "spare key"} == {
        "no key": None, "stranger": None, "operator key": None, "impostor": None}
    spare = received["spare key"]  # told why, never WELCOMEd
    assert isinstance(spare, Error) and spare.code == "auth" and "node-02" in spare.message
    refused = state["coord"].auth.refused
    assert refused[(curve.NODE_DOMAIN, keys.fingerprint(stranger_public))] >= 1
    operator_public = keys.load_public(keydir / "operator.key")
    assert refused[(curve.NODE_DOMAIN, keys.fingerprint(operator_public))] >= 1
    node_public = keys.load_public(keydir / "nodes" / "node-00.key")
    assert refused[(curve.OPERATOR_DOMAIN, keys.fingerprint(node_public))] >= 1
    # ... nor could they stop the run, which the operator controlled throughout.
    assert "error" not in control, control["error"]
    assert control["pause"] and control["resume"]
    assert control["no key"] == control["node key"] == control["stranger"] == "timeout"
    assert control["status"]["phase"] in ("waiting", "paused")
    assert sorted(n["name"] for n in summary["per_node"]) == ["node-00", "node-01"]
    assert summary["bad_frames"] == 2  # the impostor's and the spare key's HELLO
    assert summary["phase"] == "finished" and summary["stop_reason"] is None
    assert summary["rounds"] == summary["rounds_planned"] == plain["rounds"]
    # The authenticated run trains exactly the model of the run without authentication.
    assert summary["test_accuracy"] == plain["test_accuracy"]
    with np.load(tmp_path / "plain" / "weights.npz") as a, np.load(tmp_path / "curve" / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key
