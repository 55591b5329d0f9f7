"""The ZeroMQ link: the engine's :class:`~coordinator.engine.link.NodeLink` over a ROUTER.

Node processes and containers connect their DEALERs to this ROUTER. The link turns raw frames
into messages and drops what is not one: a frame of the wrong shape, bytes that do not decode,
another protocol version (answered with an ERROR that says so), and, with CURVE, a frame sent
under a routing id that is not its key's name, or a HELLO whose name the key may not use.
Each drop is counted in ``bad_frames``; the engine sees only well-formed messages.

While it waits, the link also serves *side sockets* (the coordinator's control socket), so a
command is answered within one poll, whatever phase the run is in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq

from coordinator.engine.link import Inbound, SendStatus
from protocol.net.curve import hello_refusal, user_of
from protocol.wire.frames import Error, Hello, Message, ProtocolError, VersionMismatch, decode, encode

log = logging.getLogger("rocknet.coordinator")

#: Frames taken off a socket per poll at most (the rest wait for the next poll).
_BURST = 10_000


class ZmqLink:
    """Node frames over one ROUTER socket (see the module docstring)."""

    def __init__(self, sock: zmq.Socket[Any], authenticated: bool = False) -> None:
        """``authenticated``: CURVE+ZAP is on, so every frame carries its key's user id."""
        self.sock = sock
        self.authenticated = authenticated
        self.bad_frames = 0
        #: Told of every dropped frame (the service adds them to the run's counters).
        self.on_bad_frame: Callable[[], None] = lambda: None
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self._side: dict[zmq.Socket[Any], Callable[[], None]] = {}
        self._framed: dict[int, tuple[Message, bytes]] = {}  # see frame()
        self._closed = False

    def serve_also(self, sock: zmq.Socket[Any], on_readable: Callable[[], None]) -> None:
        """Call ``on_readable()`` whenever ``sock`` has input while the link waits."""
        self._side[sock] = on_readable
        self.poller.register(sock, zmq.POLLIN)

    def frame(self, message: Message) -> bytes:
        """``encode(message)``, kept until ``message`` is sent: the checkpoint encodes the
        RXs it saves, and sending them right after costs no second encode."""
        raw = encode(message)
        self._framed[id(message)] = (message, raw)  # the message held: its id stays its own
        return raw

    def send(self, identity: bytes, message: Message) -> SendStatus:
        held = self._framed.pop(id(message), None)
        return self.send_raw(identity, held[1] if held is not None else encode(message))

    def send_raw(self, identity: bytes, raw: bytes) -> SendStatus:
        """Send an already encoded frame."""
        try:
            self.sock.send_multipart([identity, raw], zmq.NOBLOCK, copy=False)
            return SendStatus.SENT
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EAGAIN:
                return SendStatus.QUEUE_FULL
            if exc.errno == zmq.EHOSTUNREACH:
                return SendStatus.GONE
            raise

    def poll(self, timeout_s: float) -> list[Inbound]:
        events = dict(self.poller.poll(max(0, int(timeout_s * 1000))))
        for sock, handler in self._side.items():
            if sock in events:
                handler()
        if self.sock not in events:
            return []
        out: list[Inbound] = []
        for _ in range(_BURST):
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            item = self._inbound(parts)
            if item is not None:
                out.append(item)
        return out

    def _inbound(self, parts: list[zmq.Frame]) -> Inbound | None:
        if len(parts) != 2:
            self._bad()
            return None
        identity, frame = parts[0].bytes, parts[1]
        # With CURVE a node speaks only under the name of its key (protocol/net/keys.py).
        user = user_of(frame) if self.authenticated else None
        if user is not None and user != f"node:{identity.decode(errors='replace')}":
            self._bad()
            log.warning("dropped a frame from %s sent under routing id %r", user, identity)
            return None
        try:
            msg = decode(frame.bytes)
        except VersionMismatch as exc:
            self._bad()
            log.warning("refused a node on another protocol version: %s", exc)
            self.send(identity, Error(code="version", message=str(exc)))
            return None
        except ProtocolError as exc:
            self._bad()
            log.warning("dropped a bad frame from a node (%d so far): %s", self.bad_frames, exc)
            return None
        if isinstance(msg, Hello) and (why := hello_refusal(user, msg.name)):
            self._bad()
            log.warning("refused HELLO as %r: %s", msg.name, why)
            self.send(identity, Error(code="auth", message=why))
            return None
        return Inbound(identity, msg)

    def _bad(self) -> None:
        self.bad_frames += 1
        self.on_bad_frame()

    def quiet(self) -> bool:
        return False  # another process may answer at any time

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sock.close(linger=0)
