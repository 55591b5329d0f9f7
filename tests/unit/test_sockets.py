"""Socket factories (protocol/net/sockets.py): every socket carries the project's policy.

Options libzmq can read back are read back; ROUTER_MANDATORY and ROUTER_HANDOVER are
write-only in libzmq, so their behaviour is what is checked (over TCP on 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from protocol.net import sockets
from protocol.net.sockets import SocketPolicy

MiB = 2**20
KiB = 2**10
#: Milliseconds a test waits for something that must happen (a bound, not a sleep).
WAIT_MS = 10_000

Factory = Callable[["zmq.Context[Any]"], "zmq.Socket[Any]"]


@pytest.fixture()
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


# The values the coordinator, the nodes and the clients used before the factories: literal
# here, so that a changed policy fails this test instead of passing silently.
@pytest.mark.parametrize("factory, kind, linger, sndhwm, rcvhwm, maxmsgsize", [
    (sockets.node_router, zmq.ROUTER, 0, 100_000, 100_000, 16 * MiB),
    (lambda c: sockets.node_dealer(c, "node-00"), zmq.DEALER, 0, 10_000, 10_000, 16 * MiB),
    (sockets.feed_publisher, zmq.PUB, 0, 10_000, 1000, 64 * KiB),
    (sockets.feed_subscriber, zmq.SUB, 0, 1000, 200_000, 16 * MiB),
    (sockets.control_router, zmq.ROUTER, 0, 1000, 1000, 64 * KiB),
    (sockets.control_dealer, zmq.DEALER, 0, 1000, 1000, 4 * MiB),
], ids=["node_router", "node_dealer", "feed_publisher", "feed_subscriber", "control_router",
        "control_dealer"])
def test_every_socket_has_the_policy(ctx: zmq.Context[Any], factory: Factory, kind: int,
                                     linger: int, sndhwm: int, rcvhwm: int, maxmsgsize: int) -> None:
    sock = factory(ctx)
    assert sock.getsockopt(zmq.TYPE) == kind
    assert sock.getsockopt(zmq.LINGER) == linger
    assert sock.getsockopt(zmq.SNDHWM) == sndhwm
    assert sock.getsockopt(zmq.RCVHWM) == rcvhwm
    assert sock.getsockopt(zmq.MAXMSGSIZE) == maxmsgsize


def test_a_node_dealer_is_addressed_by_its_name(ctx: zmq.Context[Any]) -> None:
    assert sockets.node_dealer(ctx, "edge-7").getsockopt(zmq.ROUTING_ID) == b"edge-7"
    for bad in ("", "\0node", "x" * 256):
        with pytest.raises(ValueError, match="1..255 bytes"):
            sockets.node_dealer(ctx, bad)


def test_a_monitor_may_raise_its_message_limit_but_never_lower_the_connection_limit(
        ctx: zmq.Context[Any]) -> None:
    assert sockets.feed_subscriber(ctx, 64 * MiB).getsockopt(zmq.MAXMSGSIZE) == 64 * MiB
    assert sockets.feed_subscriber(ctx, 1).getsockopt(zmq.MAXMSGSIZE) == 16 * MiB
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        sockets.feed_subscriber(ctx, 0)


@pytest.mark.parametrize("factory", [sockets.node_router, sockets.control_router])
def test_a_router_refuses_to_send_to_an_unknown_peer(ctx: zmq.Context[Any], factory: Factory) -> None:
    router = factory(ctx)
    router.bind("tcp://127.0.0.1:*")
    with pytest.raises(zmq.ZMQError) as err:
        router.send_multipart([b"nobody", b"round"])
    assert err.value.errno == zmq.EHOSTUNREACH


def test_a_node_that_comes_back_under_its_name_takes_over_its_link(ctx: zmq.Context[Any]) -> None:
    router = sockets.node_router(ctx)
    router.bind("tcp://127.0.0.1:*")
    endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
    old = sockets.node_dealer(ctx, "node-01")
    old.connect(endpoint)
    old.send(b"from the old process")
    assert router.poll(WAIT_MS)
    assert router.recv_multipart() == [b"node-01", b"from the old process"]
    new = sockets.node_dealer(ctx, "node-01")
    new.connect(endpoint)
    new.send(b"from the new process")
    assert router.poll(WAIT_MS)  # without HANDOVER the new connection would be ignored
    assert router.recv_multipart() == [b"node-01", b"from the new process"]
    router.send_multipart([b"node-01", b"welcome back"])
    assert new.poll(WAIT_MS) and new.recv() == b"welcome back"
    assert not old.poll(0)


def test_a_peer_sending_more_than_the_limit_is_cut_off_before_decoding(ctx: zmq.Context[Any]) -> None:
    router = sockets.control_router(ctx)
    events = router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    router.bind("tcp://127.0.0.1:*")
    peer = ctx.socket(zmq.DEALER)
    peer.linger = 0
    peer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
    peer.send(b"x" * (64 * KiB + 1))
    assert events.poll(WAIT_MS)  # libzmq drops the connection at the frame header
    assert not router.poll(0)  # and nothing of the message reached the application
    events.close(linger=0)


def test_a_policy_refuses_limits_that_mean_unlimited() -> None:
    with pytest.raises(ValueError, match="send_hwm must be >= 1"):
        SocketPolicy(send_hwm=0, recv_hwm=1, max_message_bytes=1)
    with pytest.raises(ValueError, match="max_message_bytes must be >= 1"):
        SocketPolicy(send_hwm=1, recv_hwm=1, max_message_bytes=-1)
    with pytest.raises(ValueError, match="linger_ms must be >= 0"):
        SocketPolicy(send_hwm=1, recv_hwm=1, max_message_bytes=1, linger_ms=-1)
