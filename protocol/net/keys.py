"""CURVE key files of a testbed: create them, read them, check them.

Layout of a key directory (``rocknet keys init DIR``)::

    DIR/coordinator.key          the coordinator's public key: every node and operator needs it
    DIR/coordinator.key_secret   the coordinator's key pair: the coordinator only (mode 0600)
    DIR/operator.key             the operator's public key: the coordinator admits it on the
                                 control socket (and the feed, when that one is CURVE too)
    DIR/operator.key_secret      the operator's key pair: ``rocknet status/pause/...``, monitors
    DIR/nodes/<name>.key         node <name>'s public key: the coordinator admits it on the
                                 node socket
    DIR/nodes/<name>.key_secret  node <name>'s key pair: that node only (mode 0600)

Files are ZeroMQ certificates (the format of ``zmq.auth.create_certificates``). The coordinator
needs ``coordinator.key_secret``, ``operator.key`` and ``nodes/*.key``; node <name> needs
``coordinator.key`` and ``nodes/<name>.key_secret``; an operator needs ``coordinator.key`` and
``operator.key_secret``.

This module reads and checks keys without ZeroMQ (a launcher or ``rocknet keys show`` needs no
socket); only :func:`init_keys` / :func:`ensure_keys` import it, because libzmq's Curve25519
makes the key pairs. Putting keys on sockets is :mod:`protocol.net.curve`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("rocknet.keys")

COORDINATOR = "coordinator"
OPERATOR = "operator"
NODES_DIR = "nodes"
#: Environment variable naming the key directory (nodes, control clients, ``rocknet run``).
ENV_CURVE_DIR = "ROCKNET_CURVE_DIR"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
#: Z85 alphabet (ZeroMQ RFC 32): 5 characters encode 4 bytes, big-endian.
_Z85_CHARS = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUE = {c: i for i, c in enumerate(_Z85_CHARS)}
#: A CURVE key: 32 raw bytes, 40 Z85 characters.
KEY_BYTES = 32
KEY_Z85_CHARS = 40


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
    """Where node ``name``'s key pair lives in a key directory."""
    return Path(directory) / NODES_DIR / f"{name}.key_secret"


def z85_decode(text: bytes) -> bytes:
    """Raw bytes of Z85 ``text`` (a multiple of 5 characters); ValueError if it is not Z85."""
    if len(text) % 5:
        raise ValueError(f"Z85 text must be a multiple of 5 characters long, not {len(text)}")
    words = []
    for start in range(0, len(text), 5):
        value = 0
        for char in text[start:start + 5]:
            if char not in _Z85_VALUE:
                raise ValueError(f"{bytes([char])!r} is not a Z85 character")
            value = value * 85 + _Z85_VALUE[char]
        if value >= 2**32:
            raise ValueError("Z85 group out of range")
        words.append(value)
    return struct.pack(f">{len(words)}I", *words)


def fingerprint(public_key: bytes | str) -> str:
    """Short, stable id of a public key for logs: ``sha256:`` + 12 hex digits of the raw key.

    Accepts the 32 raw bytes or the 40-character Z85 text.
    """
    key = public_key.encode("ascii") if isinstance(public_key, str) else bytes(public_key)
    raw = z85_decode(key) if len(key) == KEY_Z85_CHARS else key
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:12]


# --------------------------------------------------------------------------- creating keys
def _write_pair(directory: Path, name: str) -> None:
    """Create ``name.key`` (0644) and ``name.key_secret`` (0600) in ``directory``, atomically:
    written in a private staging directory, then renamed into place."""
    import zmq.auth  # libzmq makes the Curve25519 pair; reading keys needs no zmq

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
def _read_certificate(path: Path, what: str) -> tuple[bytes, bytes | None]:
    """(public, secret or None) Z85 keys of a ZeroMQ certificate file, read as pyzmq does."""
    public: bytes | None = None
    secret: bytes | None = None
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                line = raw.strip()
                if line.startswith(b"public-key"):
                    public = line.split(b"=", 1)[-1].strip(b" \t'\"")
                elif line.startswith(b"secret-key"):
                    secret = line.split(b"=", 1)[-1].strip(b" \t'\"")
    except OSError as exc:
        raise CurveKeyError(f"cannot read the {what} {path}: {exc}") from exc
    if public is None:
        raise CurveKeyError(f"cannot read the {what} {path}: it holds no public key "
                            "(recreate it with `rocknet keys init`)")
    _check_z85(public, path)
    return public, secret


def load_pair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``.key_secret`` file; :class:`CurveKeyError` if not."""
    public, secret = _read_certificate(path, "key pair")
    if not secret:
        raise CurveKeyError(f"{path} holds no secret key (is it a public .key file?)")
    _check_z85(secret, path)
    return public, secret


def load_public(path: Path) -> bytes:
    """The Z85 public key of a ``.key`` (or ``.key_secret``) file."""
    return _read_certificate(path, "public key")[0]


def _check_z85(key: bytes, path: Path) -> None:
    try:
        ok = len(key) == KEY_Z85_CHARS and len(z85_decode(key)) == KEY_BYTES
    except ValueError:
        ok = False
    if not ok:
        raise CurveKeyError(f"{path} holds a malformed CURVE key (not 40 Z85 characters): "
                            "recreate it with `rocknet keys init`")


def missing_key(path: Path, what: str, fix: str) -> CurveKeyError:
    """The error for a key file that is not there: what it is, where it should be, the fix."""
    return CurveKeyError(f"{what}: {path} does not exist. {fix}")


def coordinator_public_key(directory: Path) -> bytes:
    """The coordinator's Z85 public key (``DIR/coordinator.key``), as every client needs it."""
    path = directory / f"{COORDINATOR}.key"
    if not path.exists():
        raise missing_key(path, "no coordinator public key",
                          f"Create the keys with `rocknet keys init {directory}` on the "
                          "coordinator and copy coordinator.key here")
    return load_public(path)


def coordinator_pair(directory: Path) -> tuple[bytes, bytes]:
    """The coordinator's (public, secret) Z85 keys (``DIR/coordinator.key_secret``)."""
    path = directory / f"{COORDINATOR}.key_secret"
    if not path.exists():
        raise missing_key(path, "no coordinator key pair",
                          f"Create the keys with `rocknet keys init {directory} --nodes N` "
                          "(or --names a,b,c)")
    return load_pair(path)


def client_keys(directory: Path, pair: Path, what: str, fix: str) -> tuple[bytes, bytes, bytes]:
    """(coordinator public, own public, own secret) Z85 keys of a client whose pair is ``pair``.

    ``what`` and ``fix`` word the error when ``pair`` is missing.
    """
    if not pair.exists():
        raise missing_key(pair, f"no CURVE key for {what}", fix)
    public, secret = load_pair(pair)
    return coordinator_public_key(directory), public, secret
