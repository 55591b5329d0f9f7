"""The seam between the run engine and the devices: :class:`NodeLink`.

A link moves whole messages (:mod:`protocol.wire.frames`) between the engine and the devices;
the engine decides everything else (who is registered, what a frame means, when a deadline
has passed). Two links implement it: the ZeroMQ link of the coordinator service
(``coordinator/service/zmq_link.py``: one DEALER per device process or container) and the
in-process link (``coordinator/engine/inprocess_link.py``: every device agent in this process).

Peers are named by their *identity*: the bytes of the node's name (its ZeroMQ routing id).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from protocol.wire.frames import Message


class SendStatus(enum.Enum):
    """What became of one outbound message."""

    SENT = "sent"
    QUEUE_FULL = "queue_full"  # the peer does not read: dropped, the run must not block
    GONE = "gone"  # no such peer any more (its socket disconnected)


@dataclass(frozen=True)
class Inbound:
    """One decoded, well-formed message from a device, with the identity it came under."""

    identity: bytes
    message: Message


class NodeLink(Protocol):
    """How the engine talks to devices (see the module docstring)."""

    def send(self, identity: bytes, message: Message) -> SendStatus:
        """Send ``message`` to one device; never blocks."""
        ...

    def poll(self, timeout_s: float) -> list[Inbound]:
        """Wait up to ``timeout_s`` for frames from devices; the ones that arrived."""
        ...

    def quiet(self) -> bool:
        """True when no frame can arrive until the engine sends again (the in-process link
        answers synchronously: waiting for a silent device would only waste time)."""
        ...

    def close(self) -> None:
        """Release the link's resources (sockets); idempotent."""
        ...
