"""Wire format of every message between node, coordinator, monitor and control client.

A frame is a msgpack map ``{"v": PROTOCOL_VERSION, "t": TYPE, <field>: <value>, ...}``
("v" always comes first, in every version, so a peer of another version is named as such).
Messages are frozen dataclasses (:mod:`protocol.wire.message`), validated when built, so a bad
one fails at the sender; :func:`decode` validates untrusted bytes the same way and raises
only :class:`ProtocolError`. Decoded arrays are read-only views of private bytes
(``.copy()`` one to write to it). Array layout and limits: :mod:`protocol.wire.codec`; the
format in prose: docs/frames.md.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from protocol.wire import codec
from protocol.wire.codec import ProtocolError, decode_array, encode_array
from protocol.wire.message import (M, Message, array_field, message_class, message_types,
                              register)

__all__ = [
    "CONTROL_MAX_BYTES", "DEFAULT_MAX_BYTES", "PROTOCOL_VERSION", "Bye", "Control",
    "ControlReply", "Error", "FeedEvent", "FeedRound", "Final", "Heartbeat", "Hello",
    "Message", "ProtocolError", "Round", "Rx", "Stop", "Tx", "VersionMismatch", "Welcome",
    "array_field",
    "decode", "decode_array", "encode", "encode_array", "message_class", "message_types",
    "register",
]

#: Version of this wire format; peers must agree exactly.
PROTOCOL_VERSION = 2
#: Largest frame :func:`decode` accepts by default (WELCOME carries a dataset shard).
DEFAULT_MAX_BYTES = 16 * 2**20
#: Largest frame on the control and monitor sockets.
CONTROL_MAX_BYTES = 64 * 2**10


def encode(msg: Message, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The frame of ``msg``; :class:`ProtocolError` if it exceeds ``max_bytes``."""
    if message_class(type(msg).TYPE) is not type(msg):
        raise TypeError(f"{type(msg).__name__} is not a registered message")
    frame: dict[str, Any] = {"v": PROTOCOL_VERSION, "t": msg.TYPE}
    for spec in msg._FIELDS:
        frame[spec.name] = getattr(msg, spec.name)
    try:
        data = codec.pack(frame)
    except (TypeError, ValueError, OverflowError) as exc:  # a dict changed after building
        raise ProtocolError(f"{msg.TYPE} cannot be encoded: {exc}") from exc
    if len(data) > max_bytes:
        raise ProtocolError(f"{msg.TYPE} frame is {len(data)} bytes, over the limit of "
                            f"{max_bytes} bytes the receiver enforces")
    return data


class VersionMismatch(ProtocolError):
    """The frame is of another protocol version (``peer_version``); answer it with an
    ERROR (``code="version"``, ``message=str(exc)``) rather than dropping it silently."""

    def __init__(self, peer_version: int) -> None:
        super().__init__(
            f"peer speaks protocol version {peer_version}, this side speaks version "
            f"{PROTOCOL_VERSION}: upgrade the node/coordinator so both run the same "
            "rocknet version")
        self.peer_version = peer_version


@typing.overload
def decode(data: bytes | bytearray | memoryview, *, max_bytes: int = ...,
           expect: type[M]) -> M: ...
@typing.overload
def decode(data: bytes | bytearray | memoryview, *, max_bytes: int = ...,
           expect: tuple[type[Message], ...] | None = None) -> Message: ...
def decode(data: bytes | bytearray | memoryview, *, max_bytes: int = DEFAULT_MAX_BYTES,
           expect: type[Message] | tuple[type[Message], ...] | None = None) -> Message:
    """The message in ``data``; :class:`ProtocolError` (only) if anything is wrong.

    ``data`` longer than ``max_bytes`` is refused before anything is unpacked. With
    ``expect`` a message of another type is an error too.
    """
    if isinstance(data, memoryview):
        if not data.c_contiguous:
            raise ProtocolError("a frame must be a contiguous buffer")
        data = data.cast("B")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"a frame is bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds the limit of {max_bytes} "
                            "bytes; refused before unpacking")
    peeked = codec.peek_version(data)
    if peeked is not None and peeked != PROTOCOL_VERSION:
        raise VersionMismatch(peeked)
    obj = codec.unpack(data, max_bytes)
    if not isinstance(obj, dict):
        raise ProtocolError(f"a frame is a msgpack map, got {type(obj).__name__}")
    version, type_name = obj.pop("v", None), obj.pop("t", None)
    if type(version) is not int:
        raise ProtocolError(f"frame lacks an int protocol version 'v' (got {version!r:.40})")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(version)
    cls = message_class(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {type_name!r:.40} "
                            f"(known: {', '.join(sorted(message_types()))})")
    wanted = (expect,) if isinstance(expect, type) else expect
    if wanted is not None and cls not in wanted:
        raise ProtocolError(f"expected {' or '.join(c.TYPE for c in wanted)}, got {cls.TYPE}")
    names = cls._NAMES
    if obj.keys() != names:
        if missing := sorted(names - obj.keys()):
            raise ProtocolError(f"{cls.TYPE} frame lacks field(s) {', '.join(missing)}")
        unknown = sorted(obj.keys() - names)
        raise ProtocolError(f"{cls.TYPE} frame has unknown field(s) {', '.join(unknown):.200}")
    # What the dataclass __init__ does, without its per-field frozen-setattr calls: every
    # field is present (checked above), so there are no defaults to fill in.
    msg = object.__new__(cls)
    msg.__dict__.update(obj)
    msg.__post_init__()  # validates every field
    return msg


# --- the messages -------------------------------------------------------------------------

def _optional_array(dtype: str, ndim: int) -> Any:
    """An array field that defaults to an empty array (``shape (0,)*ndim``) of ``dtype``."""
    return dataclasses.field(default_factory=lambda: np.zeros((0,) * ndim, dtype=dtype),
                             metadata={"dtype": dtype, "ndim": ndim})


def _check_grads(msg: Tx | Rx) -> None:
    if msg.grads.shape[0] != len(msg.grad_items):
        msg.fail(f"grad_items has {len(msg.grad_items)} items, grads {msg.grads.shape[0]} "
                 "rows: they must match")
    if len(msg.grad_items) and len(msg.logits_items) and msg.grads.shape[1] != msg.logits.shape[-1]:
        msg.fail(f"grads have {msg.grads.shape[1]} classes, logits {msg.logits.shape[-1]}: "
                 "they must match")


def _check_series(msg: Tx | Rx) -> None:
    k = len(msg.series_items)
    if msg.series.shape[0] != k or len(msg.labels) != k:
        msg.fail(f"series_items has {k} items, series {msg.series.shape[0]} rows, "
                 f"labels {len(msg.labels)}: all must match")
    if msg.logits.shape[0] != len(msg.logits_items):
        msg.fail(f"logits_items has {len(msg.logits_items)} items, logits "
                 f"{msg.logits.shape[0]} rows: they must match")


@register
@dataclass(frozen=True, eq=False)
class Hello(Message):
    """Node -> coordinator: a node process announces itself (again after a restart: its
    name gets its device id back, and it resumes from its own checkpoint)."""

    TYPE: ClassVar[str] = "HELLO"
    name: str
    pid: int
    version: int = PROTOCOL_VERSION


@register
@dataclass(frozen=True, eq=False)
class Welcome(Message):
    """Coordinator -> node: its device id, the run config and its data shard (name -> array)."""

    TYPE: ClassVar[str] = "WELCOME"
    device: int
    n_devices: int
    config: dict[str, Any]
    shard: dict[str, Any]

    def check(self) -> None:
        if not 0 <= self.device < self.n_devices:
            self.fail(f"device {self.device} is not in [0, n_devices={self.n_devices})")
        if bad := [k for k, v in self.shard.items() if not isinstance(v, np.ndarray)]:
            self.fail(f"shard entries must be numpy arrays, {bad[0]!r} is not")


@register
@dataclass(frozen=True, eq=False)
class Round(Message):
    """Coordinator -> node: send the series of items ``[series_from, series_to)``, the
    partial logits of items ``[logits_from, logits_to)``, (private labels) the ``g`` of
    items ``[grad_from, grad_to)`` you own, and (data-parallel, ``sync >= 0``) your message
    of sync ``sync``."""

    TYPE: ClassVar[str] = "ROUND"
    exchange: int
    series_from: int
    series_to: int
    logits_from: int
    logits_to: int
    grad_from: int = 0
    grad_to: int = 0
    sync: int = -1

    def check(self) -> None:
        if (self.series_from > self.series_to or self.logits_from > self.logits_to
                or self.grad_from > self.grad_to):
            self.fail(f"ranges [{self.series_from}, {self.series_to}), "
                      f"[{self.logits_from}, {self.logits_to}) and "
                      f"[{self.grad_from}, {self.grad_to}) must not run backwards")
        if self.sync < -1:
            self.fail(f"sync is a sync number or -1 (none), got {self.sync}")


@register
@dataclass(frozen=True, eq=False)
class Tx(Message):
    """Node -> coordinator: its payloads of an exchange (series it owns, partial logits
    ``[m, C]``, the ``g = softmax(z) - onehot(y)`` ``[k, C]`` of items it owns (private
    labels), its sync message as raw bytes (data-parallel)) and its stats."""

    TYPE: ClassVar[str] = "TX"
    exchange: int
    device: int
    series_items: np.ndarray = array_field("int32", 1)
    series: np.ndarray = array_field("int8", 2)
    labels: np.ndarray = array_field("int16", 1)
    logits_items: np.ndarray = array_field("int32", 1)
    logits: np.ndarray = array_field("float32", 2)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    grad_items: np.ndarray = _optional_array("int32", 1)
    grads: np.ndarray = _optional_array("float32", 2)
    sync_payload: np.ndarray = _optional_array("uint8", 1)

    def check(self) -> None:
        _check_series(self)
        _check_grads(self)


@register
@dataclass(frozen=True, eq=False)
class Rx(Message):
    """Coordinator -> node: what the air delivered to it: series, partial logits
    ``[m, N, C]`` with ``logits_mask[m, N]`` (True where device n's logits arrived), the
    ``g`` ``[k, C]`` of items ``grad_items`` that arrived (private labels), the sync
    messages ``[j, B]`` of devices ``sync_sources`` that arrived (data-parallel)."""

    TYPE: ClassVar[str] = "RX"
    exchange: int
    series_items: np.ndarray = array_field("int32", 1)
    series: np.ndarray = array_field("int8", 2)
    labels: np.ndarray = array_field("int16", 1)
    logits_items: np.ndarray = array_field("int32", 1)
    logits: np.ndarray = array_field("float32", 3)
    logits_mask: np.ndarray = array_field("bool", 2)
    grad_items: np.ndarray = _optional_array("int32", 1)
    grads: np.ndarray = _optional_array("float32", 2)
    sync_sources: np.ndarray = _optional_array("int32", 1)
    sync_payloads: np.ndarray = _optional_array("uint8", 2)

    def check(self) -> None:
        _check_series(self)
        if self.logits_mask.shape != self.logits.shape[:2]:
            self.fail(f"logits_mask has shape {self.logits_mask.shape}, "
                      f"logits {self.logits.shape}: the mask must be logits.shape[:2]")
        _check_grads(self)
        if self.sync_payloads.shape[0] != len(self.sync_sources):
            self.fail(f"sync_sources has {len(self.sync_sources)} devices, sync_payloads "
                      f"{self.sync_payloads.shape[0]} rows: they must match")


@register
@dataclass(frozen=True, eq=False)
class Heartbeat(Message):
    """Node -> coordinator: still alive, working on ``exchange``."""

    TYPE: ClassVar[str] = "HEARTBEAT"
    device: int
    exchange: int


@register
@dataclass(frozen=True, eq=False)
class Bye(Message):
    """Node -> coordinator: the node leaves."""

    TYPE: ClassVar[str] = "BYE"
    device: int
    reason: str


@register
@dataclass(frozen=True, eq=False)
class Stop(Message):
    """Coordinator -> node: finish (send FINAL) and exit."""

    TYPE: ClassVar[str] = "STOP"
    reason: str


@register
@dataclass(frozen=True, eq=False)
class Final(Message):
    """Node -> coordinator: its head slice ``weights[C, F]`` and ``bias`` (``[C]`` on the
    bias owner, ``[0]`` elsewhere) and final stats."""

    TYPE: ClassVar[str] = "FINAL"
    device: int
    weights: np.ndarray = array_field("float32", 2)
    bias: np.ndarray = array_field("float32", 1)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        if len(self.bias) not in (0, self.weights.shape[0]):
            self.fail(f"bias has {len(self.bias)} entries, must be 0 or "
                      f"{self.weights.shape[0]} (the rows of weights)")


@register
@dataclass(frozen=True, eq=False)
class Error(Message):
    """Either direction: a fatal problem, ``code`` machine-readable, ``message`` for people."""

    TYPE: ClassVar[str] = "ERROR"
    code: str
    message: str


@register
@dataclass(frozen=True, eq=False)
class Control(Message):
    """Monitor/control client -> coordinator: a command with arguments."""

    TYPE: ClassVar[str] = "CONTROL"
    command: str
    args: dict[str, Any]


@register
@dataclass(frozen=True, eq=False)
class ControlReply(Message):
    """Coordinator -> control client: outcome, and the round from which a change applies."""

    TYPE: ClassVar[str] = "CONTROL_REPLY"
    ok: bool
    message: str
    effective_round: int
    data: dict[str, Any]


@register
@dataclass(frozen=True, eq=False)
class FeedRound(Message):
    """Coordinator -> monitors (PUB): the summary of one round."""

    TYPE: ClassVar[str] = "FEED_ROUND"
    round: int
    data: dict[str, Any]


@register
@dataclass(frozen=True, eq=False)
class FeedEvent(Message):
    """Coordinator -> monitors (PUB): something happened (node joined, loss changed, ...)."""

    TYPE: ClassVar[str] = "FEED_EVENT"
    round: int
    event: str
    data: dict[str, Any]
