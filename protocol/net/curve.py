"""CURVE on the testbed's sockets: the coordinator's ZAP authenticator and the clients' keys.

A ZAP authenticator (a thread of the coordinator) admits a client only if its public key is
in the ring of the socket's ZAP domain: node keys on the node socket (domain
:data:`NODE_DOMAIN`), the operator key on the control socket (:data:`OPERATOR_DOMAIN`); a node
key cannot send control commands and the operator key cannot join as a node. A refused key is
logged with its :func:`~protocol.net.keys.fingerprint` (``rocknet keys show DIR`` lists every
key's). A key added to ``DIR/nodes`` while the coordinator runs is picked up at its first
connection attempt. Admitted clients carry a ZAP User-Id, ``node:<name>`` or
``operator:<name>``: the coordinator checks that a HELLO's name is the name of the key it came
with (:func:`hello_refusal`). Key files themselves are :mod:`protocol.net.keys`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from protocol.net.keys import (
    ENV_CURVE_DIR,
    NODES_DIR,
    OPERATOR,
    CurveKeyError,
    check_name,
    client_keys,
    coordinator_pair,
    fingerprint,
    load_public,
    node_secret_path,
)

log = logging.getLogger("rocknet.keys")

#: ZAP domain of the coordinator's node ROUTER (node keys only).
NODE_DOMAIN = "rocknet.nodes"
#: ZAP domain of the control ROUTER (and the feed PUB if it is CURVE): the operator key only.
OPERATOR_DOMAIN = "rocknet.operator"
#: Puts a client's CURVE keys on a socket before it connects (``ControlClient(curve=...)``).
CurveSetup = Callable[["zmq.Socket[Any]"], None]


# --------------------------------------------------------------------------- the server side
class KeyRing:
    """Public keys admitted per ZAP domain, read from the key directory.

    The pyzmq credentials-provider interface: :meth:`callback` answers one connection attempt.
    Unknown keys trigger a re-read of the domain's folder if it changed (a node added with
    ``rocknet keys add`` while the run goes), then are refused, counted in :attr:`refused`
    (by ``(domain, fingerprint)``) and logged: the first time at WARNING, then every 100th.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.refused: Counter[tuple[str, str]] = Counter()
        self.admitted: Counter[tuple[str, str]] = Counter()
        self.users: dict[bytes, str] = {}  # Z85 public key -> "node:<name>" / "operator:<name>"
        self._keys: dict[str, dict[bytes, str]] = {}
        self._stamp_ns: dict[str, int] = {}
        for domain in (NODE_DOMAIN, OPERATOR_DOMAIN):
            self._load(domain)
        if not self._keys[NODE_DOMAIN]:
            log.warning("no node keys in %s: every node will be refused (rocknet keys add %s NAME)",
                        self.directory / NODES_DIR, self.directory)

    def _sources(self, domain: str) -> tuple[Path, list[tuple[Path, str]]]:
        if domain == NODE_DOMAIN:
            folder = self.directory / NODES_DIR
            files = sorted(folder.glob("*.key")) if folder.is_dir() else []
            return folder, [(f, f"node:{f.name[:-4]}") for f in files]
        path = self.directory / f"{OPERATOR}.key"
        return self.directory, ([(path, f"operator:{OPERATOR}")] if path.exists() else [])

    def _load(self, domain: str) -> None:
        folder, files = self._sources(domain)
        keys: dict[bytes, str] = {}
        for path, user in files:
            try:
                keys[load_public(path)] = user
            except CurveKeyError as exc:
                log.error("skipped a key: %s", exc)
        self._keys[domain] = keys
        self.users.update(keys)
        self._stamp_ns[domain] = folder.stat().st_mtime_ns if folder.exists() else 0

    def _changed(self, domain: str) -> bool:
        folder, _ = self._sources(domain)
        return (folder.stat().st_mtime_ns if folder.exists() else 0) != self._stamp_ns[domain]

    def callback(self, domain: str, key: bytes) -> bool:
        """Admit ``key`` (Z85) on ``domain``?"""
        keys = self._keys.get(domain)
        if keys is None:
            allowed = False
        else:
            if key not in keys and self._changed(domain):
                self._load(domain)
                keys = self._keys[domain]
            allowed = key in keys
        fp = fingerprint(key)
        if allowed:
            self.admitted[(domain, fp)] += 1
            if self.admitted[(domain, fp)] == 1:
                log.info("admitted %s (key %s) on %s", self._keys[domain][key], fp, domain)
            return True
        self.refused[(domain, fp)] += 1
        n = self.refused[(domain, fp)]
        if n == 1 or n % 100 == 0:
            known = self.users.get(key)
            why = f"{known}'s key, not allowed here" if known else "an unknown key"
            log.warning("refused a connection on %s: %s, fingerprint %s (attempt %d)",
                        domain, why, fp, n)
        return False

    def user_id(self, key_raw: bytes) -> str:
        """The ZAP User-Id of a raw (32-byte) public key: its owner, or ``anonymous``."""
        return self.users.get(z85.encode(key_raw), "anonymous")


class CurveAuthenticator(ThreadAuthenticator):
    """The ZAP handler thread, admitting keys of a :class:`KeyRing` and naming their owners."""

    def __init__(self, context: zmq.Context[Any], ring: KeyRing) -> None:
        super().__init__(context, log=logging.getLogger("rocknet.zap"))
        self.ring = ring

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.ring.user_id(client_public_key)

    @property
    def refused(self) -> Counter[tuple[str, str]]:
        """Refused connection attempts by ``(domain, fingerprint)``."""
        return self.ring.refused


def apply_server_keys(ctx: zmq.Context[Any], sockets: Sequence[zmq.Socket[Any]],
                      curve_dir: Path | str,
                      roles: Sequence[str] | None = None) -> CurveAuthenticator:
    """Make ``sockets`` CURVE servers with the coordinator's key and start the ZAP handler.

    ``sockets[0]`` is the node socket (node keys, :data:`NODE_DOMAIN`), every other socket
    is an operator socket (control ROUTER, feed PUB: the operator key,
    :data:`OPERATOR_DOMAIN`); ``roles`` ("nodes"/"operator" per socket) overrides that.
    Call before ``bind``. Returns the running authenticator (``.stop()`` it after closing
    the sockets, before ``ctx.term()``).
    """
    directory = Path(curve_dir)
    public, secret = coordinator_pair(directory)
    roles = list(roles) if roles is not None else ["nodes"] + ["operator"] * (len(sockets) - 1)
    if len(roles) != len(sockets) or set(roles) - {"nodes", "operator"}:
        raise ValueError(f"roles must be 'nodes' or 'operator', one per socket, got {roles}")
    ring = KeyRing(directory)
    auth = CurveAuthenticator(ctx, ring)
    auth.start()
    for domain in (NODE_DOMAIN, OPERATOR_DOMAIN):
        auth.configure_curve_callback(domain, credentials_provider=ring)
    for sock, role in zip(sockets, roles):
        sock.curve_server = True
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.zap_domain = (NODE_DOMAIN if role == "nodes" else OPERATOR_DOMAIN).encode()
    log.info("CURVE on: coordinator key %s, %d node key(s), operator key %s", fingerprint(public),
             sum(1 for u in ring.users.values() if u.startswith("node:")),
             "present" if any(u.startswith("operator:") for u in ring.users.values()) else "MISSING")
    return auth


def user_of(frame: zmq.Frame) -> str | None:
    """The ZAP User-Id a received frame came with (None without CURVE)."""
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError):
        return None
    return str(user) if user else None


def hello_refusal(user_id: str | None, name: str) -> str | None:
    """Why a HELLO as ``name`` from a peer authenticated as ``user_id`` is refused, or None.

    With CURVE on, node ``name`` must connect with the key ``nodes/<name>.key``.
    """
    if user_id is None or user_id == f"node:{name}":
        return None
    return (f"this node's key belongs to {user_id!r}, not to node {name!r}: start it with "
            f"--name {user_id.split(':', 1)[-1]!r} or give it nodes/{name}.key_secret")


# --------------------------------------------------------------------------- the client side
def _set_client(sock: zmq.Socket[Any], keys: tuple[bytes, bytes, bytes]) -> None:
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = keys


def apply_client_keys(sock: zmq.Socket[Any], curve_dir: Path | str, name: str) -> None:
    """Node side: node ``name``'s key pair and the coordinator's public key, before connect."""
    directory = Path(curve_dir)
    _set_client(sock, client_keys(
        directory, node_secret_path(directory, check_name(name)), f"node {name!r}",
        f"Create it with `rocknet keys init {directory} --names {name}` (or `rocknet keys add "
        f"{directory} {name}` if the directory exists) in the coordinator's key directory and "
        "copy it to this node: the coordinator admits only keys in its nodes/ folder"))


def _operator_keys(directory: Path) -> tuple[bytes, bytes, bytes]:
    return client_keys(
        directory, directory / f"{OPERATOR}.key_secret", "the operator",
        f"Create the keys with `rocknet keys init {directory}` and copy operator.key_secret "
        "and coordinator.key here")


def apply_operator_keys(sock: zmq.Socket[Any], curve_dir: Path | str) -> None:
    """Control client / monitor side: the operator's key pair and the coordinator's key."""
    _set_client(sock, _operator_keys(Path(curve_dir)))


def operator_curve(curve_dir: Path | str) -> CurveSetup:
    """A ``curve=`` callable for :class:`coordinator.ui.control_client.ControlClient`; reads (and so
    checks) the keys now, so a missing file is reported before anything connects."""
    keys = _operator_keys(Path(curve_dir))
    return lambda sock: _set_client(sock, keys)


def operator_curve_from_env() -> CurveSetup | None:
    """:func:`operator_curve` of ``$ROCKNET_CURVE_DIR``, or None when it is unset or empty."""
    value = os.environ.get(ENV_CURVE_DIR, "")
    return operator_curve(value) if value else None


# --------------------------------------------------------------------------- handshakes
#: Socket-monitor events that end a ZMTP handshake (see :func:`handshake_result`).
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def handshake_result(monitor: zmq.Socket[Any], timeout_s: float) -> str | None:
    """The first handshake outcome a socket monitor reports within ``timeout_s``.

    ``monitor`` is ``sock.get_monitor_socket(HANDSHAKE_EVENTS)`` of a client socket, taken
    before it connects. Returns ``"ok"``; ``"refused"`` (the coordinator's ZAP handler does not
    know this key, or not on that socket); ``"mismatch"`` (one side speaks CURVE and the other
    does not, or the coordinator's public key is wrong); or None (no outcome yet).
    """
    if not monitor.poll(int(timeout_s * 1000)):
        return None
    event = recv_monitor_message(monitor)["event"]
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return "ok"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "refused"
    return "mismatch"
