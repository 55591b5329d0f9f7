"""The testbed's ZeroMQ sockets, each made with the project's socket policy in one place.

Policy (DESIGN §5), applied by every factory here before the caller binds or connects:

- ``LINGER`` 0: ``ctx.term()`` never hangs on queued messages (a stopping process closes its
  sockets first; whoever must flush, e.g. a node's FINAL, sends with its own deadline).
- ``SNDHWM`` / ``RCVHWM`` explicit: ZeroMQ's default (1000) is approximate and drops or blocks
  silently; the only loss in this testbed is the injected, counted loss.
- ``MAXMSGSIZE`` on every socket facing the network: ZeroMQ drops a peer that sends more,
  before msgpack sees a byte.
- ``ROUTER_MANDATORY`` on every ROUTER: a send to an unknown or gone peer raises instead of
  vanishing. ``ROUTER_HANDOVER`` on the node ROUTER: a node that comes back under its name
  (its routing id) replaces its old connection.

The caller puts CURVE keys on a socket (:mod:`protocol.net.curve`) between the factory and
``bind``/``connect``. Create sockets in the process that uses them (after fork), never before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import zmq

from protocol.wire.frames import CONTROL_MAX_BYTES, DEFAULT_MAX_BYTES

#: ZeroMQ's default high-water mark (messages): written out where we keep it.
ZMQ_DEFAULT_HWM = 1000


@dataclass(frozen=True)
class SocketPolicy:
    """Buffering and size limits of one kind of socket.

    ``send_hwm`` / ``recv_hwm``: messages queued per peer before ZeroMQ blocks or drops;
    ``max_message_bytes``: largest message accepted from a peer (larger: peer disconnected);
    ``linger_ms``: how long ``close`` waits for unsent messages.
    """

    send_hwm: int
    recv_hwm: int
    max_message_bytes: int
    linger_ms: int = 0

    def __post_init__(self) -> None:
        for field, value in (("send_hwm", self.send_hwm), ("recv_hwm", self.recv_hwm),
                             ("max_message_bytes", self.max_message_bytes)):
            if value < 1:
                raise ValueError(f"{field} must be >= 1 (0 would mean unlimited), got {value}")
        if self.linger_ms < 0:
            raise ValueError(f"linger_ms must be >= 0 (-1 hangs ctx.term()), got {self.linger_ms}")

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Set this policy's options on ``sock`` (before it binds or connects)."""
        sock.setsockopt(zmq.LINGER, self.linger_ms)
        sock.setsockopt(zmq.SNDHWM, self.send_hwm)
        sock.setsockopt(zmq.RCVHWM, self.recv_hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)


#: Coordinator ROUTER facing the nodes: one round's TXs of 1000s of nodes queue without loss.
NODE_ROUTER = SocketPolicy(send_hwm=100_000, recv_hwm=100_000, max_message_bytes=DEFAULT_MAX_BYTES)
#: A node's DEALER: a node has a few messages in flight; 10 000 is far above that.
NODE_DEALER = SocketPolicy(send_hwm=10_000, recv_hwm=10_000, max_message_bytes=DEFAULT_MAX_BYTES)
#: Coordinator PUB of the monitor feed: 10 000 messages per subscriber, then the slow one
#: misses rounds (fine for a feed, which sends a snapshot on attach). It receives only
#: subscriptions, a few bytes each.
FEED_PUBLISHER = SocketPolicy(send_hwm=10_000, recv_hwm=ZMQ_DEFAULT_HWM,
                              max_message_bytes=CONTROL_MAX_BYTES)
#: A monitor's SUB: buffers 200 000 messages, so a slow terminal does not make it lose rounds.
#: The coordinator never encodes more than DEFAULT_MAX_BYTES; larger means a broken peer.
FEED_SUBSCRIBER = SocketPolicy(send_hwm=ZMQ_DEFAULT_HWM, recv_hwm=200_000,
                               max_message_bytes=DEFAULT_MAX_BYTES)
#: Coordinator ROUTER of control commands: small requests, one at a time per client.
CONTROL_ROUTER = SocketPolicy(send_hwm=ZMQ_DEFAULT_HWM, recv_hwm=ZMQ_DEFAULT_HWM,
                              max_message_bytes=CONTROL_MAX_BYTES)
#: A control client's DEALER: replies (a status of many nodes) are up to 64x a request.
CONTROL_DEALER = SocketPolicy(send_hwm=ZMQ_DEFAULT_HWM, recv_hwm=ZMQ_DEFAULT_HWM,
                              max_message_bytes=64 * CONTROL_MAX_BYTES)


def node_routing_id(name: str) -> bytes:
    """ZeroMQ routing id of a node: its name (1..255 bytes, not starting with a zero byte)."""
    raw = name.encode()
    if not raw or len(raw) > 255 or raw[0] == 0:
        raise ValueError(f"node name {name!r} must be 1..255 bytes and not start with NUL")
    return raw


def _router(ctx: zmq.Context[Any], policy: SocketPolicy) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = ctx.socket(zmq.ROUTER)
    policy.apply(sock)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    return sock


#: ZMTP heartbeats on the node link (ms): a peer silent for HEARTBEAT_TIMEOUT_MS is
#: disconnected, so a dead container or host is seen within that time (our choice; ZeroMQ
#: sends no heartbeats by default and a dead TCP peer stays invisible, DESIGN 5). A killed
#: local process is seen at once (its TCP connection closes). Not 1 s: with 200 node
#: processes on 2 cores a busy peer answers late, and a dropped connection loses the frames
#: queued on it (a STOP, a FINAL): 17 of 200 FINALs were lost so (docs/scaling.md).
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 5000


def _heartbeats(sock: zmq.Socket[Any]) -> None:
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)


def node_router(ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
    """The coordinator's ROUTER the nodes connect to (:data:`NODE_ROUTER`, HANDOVER on)."""
    sock = _router(ctx, NODE_ROUTER)
    # A node that comes back under the same name (its routing id) replaces the old link.
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    _heartbeats(sock)
    return sock


def node_dealer(ctx: zmq.Context[Any], name: str) -> zmq.Socket[Any]:
    """Node ``name``'s DEALER to the coordinator (:data:`NODE_DEALER`).

    The name is the routing id: a restarted coordinator can address this node at once, and a
    restarted node (same name) takes its place (the node ROUTER sets HANDOVER).
    """
    routing_id = node_routing_id(name)
    sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
    NODE_DEALER.apply(sock)
    sock.setsockopt(zmq.ROUTING_ID, routing_id)
    _heartbeats(sock)
    return sock


def feed_publisher(ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
    """The coordinator's PUB of the monitor feed (:data:`FEED_PUBLISHER`)."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.PUB)
    FEED_PUBLISHER.apply(sock)
    return sock


def feed_subscriber(ctx: zmq.Context[Any], max_bytes: int = DEFAULT_MAX_BYTES) -> zmq.Socket[Any]:
    """A monitor's SUB on the feed, subscribed to everything (:data:`FEED_SUBSCRIBER`).

    ``max_bytes`` above DEFAULT_MAX_BYTES raises the connection limit to it; a smaller one is
    the decoder's business (it drops and counts such frames instead of losing the connection).
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    sock: zmq.Socket[Any] = ctx.socket(zmq.SUB)
    FEED_SUBSCRIBER.apply(sock)
    sock.setsockopt(zmq.MAXMSGSIZE, max(FEED_SUBSCRIBER.max_message_bytes, max_bytes))
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock


def control_router(ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
    """The coordinator's ROUTER of control commands (:data:`CONTROL_ROUTER`)."""
    return _router(ctx, CONTROL_ROUTER)


def control_dealer(ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
    """A control client's DEALER to the coordinator (:data:`CONTROL_DEALER`)."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
    CONTROL_DEALER.apply(sock)
    return sock
