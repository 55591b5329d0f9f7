"""CURVE keys of a testbed: create them, and put them on the coordinator's and clients' sockets.

Layout of a key directory (``rocknet keys init DIR``)::

    DIR/coordinator.key          the coordinator's public key: every node and operator needs it
    DIR/coordinator.key_secret   the coordinator's key pair: the coordinator only (mode 0600)
    DIR/operator.key             the operator's public key: the coordinator admits it on the
                                 control socket (and the feed, when that one is CURVE too)
    DIR/operator.key_secret      the operator's key pair: ``rocknet status/pause/...``, monitors
    DIR/nodes/<name>.key         node <name>'s public key: the coordinator admits it on the
                                 node socket
    DIR/nodes/<name>.key_secret  node <name>'s key pair: that node only (mode 0600)

Files are ZeroMQ certificates (``zmq.auth.create_certificates``). The coordinator needs
``coordinator.key_secret``, ``operator.key`` and ``nodes/*.key``; node <name> needs
``coordinator.key`` and ``nodes/<name>.key_secret``; an operator needs ``coordinator.key`` and
``operator.key_secret``.

A ZAP authenticator (a thread of the coordinator) admits a client only if its public key is
in the ring of the socket's ZAP domain: node keys on the node socket (domain
:data:`NODE_DOMAIN`), the operator key on the control socket (:data:`OPERATOR_DOMAIN`); a node
key cannot send control commands and the operator key cannot join as a node. A refused key is
logged with its :func:`fingerprint` (``rocknet keys show DIR`` lists every key's). A key added
to ``DIR/nodes`` while the coordinator runs is picked up at its first connection attempt.
Admitted clients carry a ZAP User-Id, ``node:<name>`` or ``operator:<name>``: the coordinator
checks that a HELLO's name is the name of the key it came with (:func:`hello_refusal`).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

log = logging.getLogger("rocknet.keys")

COORDINATOR = "coordinator"
OPERATOR = "operator"
NODES_DIR = "nodes"
#: ZAP domain of the coordinator's node ROUTER (node keys only).
NODE_DOMAIN = "rocknet.nodes"
#: ZAP domain of the control ROUTER (and the feed PUB if it is CURVE): the operator key only.
OPERATOR_DOMAIN = "rocknet.operator"
#: Environment variable naming the key directory (nodes, control clients, ``rocknet run``).
ENV_CURVE_DIR = "ROCKNET_CURVE_DIR"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


class CurveKeyError(RuntimeError):
    """A key is missing, unreadable or malformed; the message names the file and the fix."""


# --------------------------------------------------------------------------- names, paths
def check_name(name: str) -> str:
    """``name`` if it can be a key file name (letters, digits, ``_ . -``, at most 64)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (COORDINATOR, OPERATOR):
        raise CurveKeyError(
            f"node name {name!r} cannot name a key file: use 1-64 letters, digits, '_', '.', "
            f"'-' (not starting with '.' or '-', and not {COORDINATOR!r} or {OPERATOR!r})")
    return name


def local_node_names(n: int) -> list[str]:
    """The names the local launcher gives its nodes: ``node-00 .. node-{n-1}``."""
    if n < 1:
        raise CurveKeyError(f"--nodes must be >= 1, got {n}")
    return [f"node-{i:02d}" for i in range(n)]


def node_secret_path(directory: Path | str, name: str) -> Path:
    return Path(directory) / NODES_DIR / f"{name}.key_secret"


def fingerprint(public_key: bytes | str) -> str:
    """Short, stable id of a public key for logs: ``sha256:`` + 12 hex digits of the raw key.

    Accepts the 32 raw bytes or the 40-character Z85 text.
    """
    key = public_key.encode("ascii") if isinstance(public_key, str) else bytes(public_key)
    raw = z85.decode(key) if len(key) == 40 else key
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:12]


# --------------------------------------------------------------------------- creating keys
def _write_pair(directory: Path, name: str) -> None:
    """Create ``name.key`` (0644) and ``name.key_secret`` (0600) in ``directory``, atomically:
    written in a private staging directory, then renamed into place."""
    staging = Path(tempfile.mkdtemp(prefix=".keys-", dir=directory))  # mode 0700
    try:
        public, secret = zmq.auth.create_certificates(staging, name)
        os.chmod(secret, 0o600)
        os.chmod(public, 0o644)
        os.replace(secret, directory / f"{name}.key_secret")
        os.replace(public, directory / f"{name}.key")
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()


def _key_files(directory: Path, node_names: Iterable[str]) -> list[tuple[Path, str]]:
    """(folder, name) of every key pair of a run: coordinator, operator, nodes."""
    names = [check_name(n) for n in node_names]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise CurveKeyError(f"node names must be distinct, {', '.join(dup)} repeat(s)")
    return [(directory, COORDINATOR), (directory, OPERATOR)] + [
        (directory / NODES_DIR, n) for n in names]


def _prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / NODES_DIR).mkdir(exist_ok=True)


def init_keys(directory: Path | str, node_names: list[str], *, force: bool = False) -> None:
    """Write the coordinator's, the operator's and each node's key pair into ``directory``.

    Refuses (:class:`CurveKeyError`, nothing written) if any of these keys exists already,
    unless ``force``: new keys lock out every process that still holds an old one.
    """
    directory = Path(directory)
    pairs = _key_files(directory, node_names)
    if not force:
        existing = [str(d / f"{n}.key_secret") for d, n in pairs if (d / f"{n}.key_secret").exists()]
        if existing:
            raise CurveKeyError(
                f"{len(existing)} key(s) exist already (e.g. {existing[0]}): keep them, add "
                f"nodes with `rocknet keys add {directory} NAME...`, or replace every key with "
                "--force (processes holding old keys are then refused)")
    _prepare(directory)
    for folder, name in pairs:
        _write_pair(folder, name)


def ensure_keys(directory: Path | str, node_names: Iterable[str]) -> list[str]:
    """Create whichever of the run's key pairs is missing in ``directory``; keep the others.

    Returns the names created (``coordinator``, ``operator``, node names). This is what a
    local ``rocknet run --curve-dir DIR`` calls before it starts anything.
    """
    directory = Path(directory)
    pairs = _key_files(directory, node_names)
    _prepare(directory)
    created = []
    for folder, name in pairs:
        if not (folder / f"{name}.key_secret").exists():
            _write_pair(folder, name)
            created.append(name)
    if created:
        log.info("created CURVE keys in %s: %s", directory, ", ".join(created))
    return created


# --------------------------------------------------------------------------- loading keys
def load_pair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``.key_secret`` file; :class:`CurveKeyError` if not."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"cannot read the key pair {path}: {exc}") from exc
    if not secret:
        raise CurveKeyError(f"{path} holds no secret key (is it a public .key file?)")
    _check_z85(public, path)
    _check_z85(secret, path)
    return public, secret


def load_public(path: Path) -> bytes:
    """The Z85 public key of a ``.key`` (or ``.key_secret``) file."""
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"cannot read the public key {path}: {exc}") from exc
    _check_z85(public, path)
    return public


def _check_z85(key: bytes, path: Path) -> None:
    try:
        ok = len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, IndexError, TypeError):
        ok = False
    if not ok:
        raise CurveKeyError(f"{path} holds a malformed CURVE key (not 40 Z85 characters): "
                            "recreate it with `rocknet keys init`")


def _missing(path: Path, what: str, fix: str) -> CurveKeyError:
    return CurveKeyError(f"{what}: {path} does not exist. {fix}")


def _server_key(directory: Path) -> bytes:
    path = directory / f"{COORDINATOR}.key"
    if not path.exists():
        raise _missing(path, "no coordinator public key",
                       f"Create the keys with `rocknet keys init {directory}` on the coordinator "
                       "and copy coordinator.key here")
    return load_public(path)


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
        self._stamp: dict[str, int] = {}
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
        self._stamp[domain] = folder.stat().st_mtime_ns if folder.exists() else 0

    def _changed(self, domain: str) -> bool:
        folder, _ = self._sources(domain)
        return (folder.stat().st_mtime_ns if folder.exists() else 0) != self._stamp[domain]

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
    secret_path = directory / f"{COORDINATOR}.key_secret"
    if not secret_path.exists():
        raise _missing(secret_path, "no coordinator key pair",
                       f"Create the keys with `rocknet keys init {directory} --nodes N` "
                       "(or --names a,b,c)")
    public, secret = load_pair(secret_path)
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
    return user or None


def hello_refusal(user_id: str | None, name: str) -> str | None:
    """Why a HELLO as ``name`` from a peer authenticated as ``user_id`` is refused, or None.

    With CURVE on, node ``name`` must connect with the key ``nodes/<name>.key``.
    """
    if user_id is None or user_id == f"node:{name}":
        return None
    return (f"this node's key belongs to {user_id!r}, not to node {name!r}: start it with "
            f"--name {user_id.split(':', 1)[-1]!r} or give it nodes/{name}.key_secret")


# --------------------------------------------------------------------------- the client side
def _client_keys(directory: Path, pair: Path, what: str, fix: str) -> tuple[bytes, bytes, bytes]:
    """(server public, own public, own secret) Z85 keys, or :class:`CurveKeyError`."""
    if not pair.exists():
        raise _missing(pair, f"no CURVE key for {what}", fix)
    public, secret = load_pair(pair)
    return _server_key(directory), public, secret


def _set_client(sock: zmq.Socket[Any], keys: tuple[bytes, bytes, bytes]) -> None:
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = keys


def apply_client_keys(sock: zmq.Socket[Any], curve_dir: Path | str, name: str) -> None:
    """Node side: node ``name``'s key pair and the coordinator's public key, before connect."""
    directory = Path(curve_dir)
    _set_client(sock, _client_keys(
        directory, node_secret_path(directory, check_name(name)), f"node {name!r}",
        f"Create it with `rocknet keys init {directory} --names {name}` (or `rocknet keys add "
        f"{directory} {name}` if the directory exists) in the coordinator's key directory and "
        "copy it to this node: the coordinator admits only keys in its nodes/ folder"))


def _operator_keys(directory: Path) -> tuple[bytes, bytes, bytes]:
    return _client_keys(
        directory, directory / f"{OPERATOR}.key_secret", "the operator",
        f"Create the keys with `rocknet keys init {directory}` and copy operator.key_secret "
        "and coordinator.key here")


def apply_operator_keys(sock: zmq.Socket[Any], curve_dir: Path | str) -> None:
    """Control client / monitor side: the operator's key pair and the coordinator's key."""
    _set_client(sock, _operator_keys(Path(curve_dir)))


def operator_curve(curve_dir: Path | str) -> Callable[[zmq.Socket[Any]], None]:
    """A ``curve=`` callable for :class:`coordinator.ui.control_client.ControlClient`; reads (and so
    checks) the keys now, so a missing file is reported before anything connects."""
    keys = _operator_keys(Path(curve_dir))
    return lambda sock: _set_client(sock, keys)


def operator_curve_from_env() -> Callable[[zmq.Socket[Any]], None] | None:
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
    from zmq.utils.monitor import recv_monitor_message

    if not monitor.poll(int(timeout_s * 1000)):
        return None
    event = recv_monitor_message(monitor)["event"]
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return "ok"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "refused"
    return "mismatch"


# --------------------------------------------------------------------------- rocknet keys
def _names(args: argparse.Namespace) -> list[str]:
    if getattr(args, "names", None):
        return [n.strip() for n in args.names.split(",") if n.strip()]
    if getattr(args, "nodes", None) is not None:
        return local_node_names(args.nodes)
    return []


def main_init(args: argparse.Namespace) -> int:
    """``rocknet keys init DIR [--nodes N | --names a,b,c] [--force]``."""
    names = _names(args)
    init_keys(args.directory, names, force=args.force)
    print(f"wrote CURVE keys to {args.directory}: coordinator, operator and {len(names)} node(s)")
    _print_keys(Path(args.directory))
    return 0


def main_add(args: argparse.Namespace) -> int:
    """``rocknet keys add DIR NAME...``: keys for more nodes (a running coordinator sees them)."""
    created = ensure_keys(args.directory, args.names)
    print(f"created: {', '.join(created) if created else 'nothing (all keys existed)'}")
    return 0


def main_show(args: argparse.Namespace) -> int:
    """``rocknet keys show DIR``: every key's owner and fingerprint (as the coordinator logs it)."""
    _print_keys(Path(args.directory))
    return 0


def _print_keys(directory: Path) -> None:
    if not directory.is_dir():
        raise CurveKeyError(f"{directory} is not a directory: create it with `rocknet keys init`")
    rows = [(COORDINATOR, directory / f"{COORDINATOR}.key"), (OPERATOR, directory / f"{OPERATOR}.key")]
    rows += [(f"node {p.name[:-4]}", p) for p in sorted((directory / NODES_DIR).glob("*.key"))]
    for who, path in rows:
        if path.exists():
            secret = path.with_name(path.name + "_secret")
            print(f"  {who:<24} {fingerprint(load_public(path))}  "
                  f"{'(+ secret)' if secret.exists() else '(public only)'}  {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rocknet keys", description="CURVE keys of a testbed.")
    sub = p.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="create the coordinator's, operator's and nodes' keys")
    init.add_argument("directory", type=Path)
    who = init.add_mutually_exclusive_group()
    who.add_argument("--nodes", type=int, help="N nodes named node-00 .. node-{N-1} (local runs)")
    who.add_argument("--names", help="comma-separated node names (e.g. compose hostnames)")
    init.add_argument("--force", action="store_true", help="replace existing keys")
    init.set_defaults(func=main_init)
    add = sub.add_parser("add", help="create keys for more nodes, keep the existing ones")
    add.add_argument("directory", type=Path)
    add.add_argument("names", nargs="+")
    add.set_defaults(func=main_add)
    show = sub.add_parser("show", help="list keys with their fingerprints")
    show.add_argument("directory", type=Path)
    show.set_defaults(func=main_show)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rocknet keys ...``; errors are one line naming the fix (exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CurveKeyError, OSError) as exc:
        print(f"rocknet keys: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
