"""A monitor's view of a running coordinator: where its sockets are, and a SUB on its feed.

The coordinator publishes one :class:`~protocol.wire.frames.FeedRound` per radio round and one
:class:`~protocol.wire.frames.FeedEvent` per change on a PUB socket. :class:`FeedClient` is the
subscriber: it connects (ZeroMQ reconnects by itself, so it may connect before the
coordinator exists), subscribes to everything, and decodes frames, dropping (and counting)
any that are malformed, too large or of another protocol version. It only ever reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol.net.sockets import feed_subscriber
from protocol.wire.frames import FeedEvent, FeedRound, ProtocolError, decode

#: Largest feed frame the monitor decodes (a 1000-node round record is well under 1 MiB).
FEED_MAX_BYTES = 4 * 2**20

FeedMessage = Union[FeedRound, FeedEvent]
#: Configures a socket for CURVE before it connects (as ``ControlClient(curve=...)`` takes).
CurveSetup = Callable[[zmq.Socket], None]


class EndpointError(ValueError):
    """A ``--connect`` value that is neither a host nor ``tcp://HOST:PORT``."""


@dataclass(frozen=True)
class Endpoints:
    """The coordinator's control (ROUTER) and feed (PUB) endpoints as ``tcp://HOST:PORT``."""

    control: str
    feed: str


def resolve_endpoints(connect: str, control_port: int, feed_port: int) -> Endpoints:
    """Endpoints from ``--connect``: ``HOST``, or the control socket as ``HOST:PORT`` or
    ``tcp://HOST:PORT``.

    With a bare host both ports come from the flags; otherwise the control port is the one
    given and the feed is ``tcp://HOST:feed_port``.
    """
    text = connect.strip()
    if not text:
        raise EndpointError("--connect is empty: give a host (127.0.0.1) or tcp://HOST:PORT")
    for port, flag in ((control_port, "--control-port"), (feed_port, "--feed-port")):
        if not 0 < port < 65536:
            raise EndpointError(f"{flag} must be a TCP port in 1..65535, got {port}")
    if "://" not in text:
        if text.count(":") == 1:  # HOST:PORT of the control socket
            text = f"tcp://{text}"
        elif ":" in text:
            raise EndpointError(f"--connect {connect!r}: give a host, HOST:PORT or "
                                "tcp://HOST:PORT (IPv6: tcp://[ADDR]:PORT)")
        else:
            return Endpoints(f"tcp://{text}:{control_port}", f"tcp://{text}:{feed_port}")
    scheme, _, rest = text.partition("://")
    host, sep, port_text = rest.rpartition(":")
    if scheme != "tcp" or not sep or not host or not port_text.isdigit():
        raise EndpointError(f"--connect {connect!r}: use tcp://HOST:PORT (the coordinator's "
                            "control socket) or a bare host")
    port = int(port_text)
    if not 0 < port < 65536:
        raise EndpointError(f"--connect {connect!r}: port must be in 1..65535")
    return Endpoints(f"tcp://{host}:{port}", f"tcp://{host}:{feed_port}")


def feed_port_of(endpoint: str) -> int | None:
    """The port of a ``tcp://HOST:PORT`` endpoint (None if there is none)."""
    _, sep, port = endpoint.rpartition(":")
    return int(port) if sep and port.isdigit() else None


class FeedClient:
    """SUB socket on the coordinator's feed; ``receive()`` returns decoded messages.

    ``dropped`` counts frames that could not be decoded (``last_error`` says why): they are
    skipped, never fatal.
    """

    def __init__(self, endpoint: str, max_bytes: int = FEED_MAX_BYTES,
                 ctx: zmq.Context | None = None, curve: CurveSetup | None = None) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.endpoint = endpoint
        self.max_bytes = max_bytes
        self.dropped = 0
        self.last_error: str | None = None
        self._own_ctx = ctx is None
        self.ctx = ctx if ctx is not None else zmq.Context()
        # Frames between max_bytes and the socket's limit are dropped (and counted) by decode().
        self.sock = feed_subscriber(self.ctx, max_bytes)
        if curve is not None:
            curve(self.sock)
        self._events = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self._connected = False
        self.sock.connect(endpoint)

    # ------------------------------------------------------------------ connection
    def _drain_events(self, timeout_ms: int) -> None:
        if not self._events.poll(timeout_ms):
            return
        while True:
            try:
                event = recv_monitor_message(self._events, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._connected = True
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._connected = False

    @property
    def connected(self) -> bool:
        """Whether the TCP connection to the publisher is up (as of the last check)."""
        self._drain_events(0)
        return self._connected

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the connection (and so the subscription) to be made."""
        deadline = time.monotonic() + timeout_s
        self._drain_events(0)
        while not self._connected:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._drain_events(int(left * 1000) + 1)
        return True

    def unsubscribe(self) -> None:
        """Stop receiving: the publisher drops what it sends to this socket until
        :meth:`subscribe` (how a slow or stalled subscriber loses rounds)."""
        self.sock.setsockopt(zmq.UNSUBSCRIBE, b"")

    def subscribe(self) -> None:
        """Receive everything again (the subscription is live at the publisher shortly after)."""
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")

    # ------------------------------------------------------------------ messages
    def receive(self, timeout_s: float, limit: int = 50_000) -> list[FeedMessage]:
        """Wait up to ``timeout_s`` for a frame, then take every queued one (at most ``limit``)."""
        out: list[FeedMessage] = []
        if not self.sock.poll(max(0, int(timeout_s * 1000))):
            return out
        for _ in range(limit):
            try:
                raw = self.sock.recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            try:
                msg = decode(raw, max_bytes=self.max_bytes, expect=(FeedRound, FeedEvent))
            except ProtocolError as exc:
                self.dropped += 1
                self.last_error = str(exc)
                continue
            if isinstance(msg, (FeedRound, FeedEvent)):  # what ``expect`` lets through
                out.append(msg)
        return out

    def close(self) -> None:
        self.sock.disable_monitor()
        self._events.close(linger=0)
        self.sock.close(linger=0)
        if self._own_ctx:
            self.ctx.term()

    def __enter__(self) -> FeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
