"""A control client: one request, one reply, over a DEALER to the coordinator's control ROUTER."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import zmq

from protocol.wire.frames import (
    CONTROL_MAX_BYTES,
    Control,
    ControlReply,
    ProtocolError,
    decode,
    encode,
)


class ControlTimeout(RuntimeError):
    """No coordinator answered in time."""


class ControlClient:
    """``with ControlClient("tcp://127.0.0.1:7102") as c: c.request("status")``.

    ``curve`` configures the socket for CURVE (``protocol.net.keys.operator_curve(DIR)``); when
    it is not given, ``$ROCKNET_CURVE_DIR`` (if set) supplies the operator's key.
    """

    def __init__(self, endpoint: str, timeout_s: float = 5.0, curve: Any | None = None) -> None:
        if curve is None:
            from protocol.net.keys import operator_curve_from_env

            curve = operator_curve_from_env()
        self.curve = curve is not None
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, 64 * CONTROL_MAX_BYTES)
        if curve is not None:
            curve(self.sock)
        self.sock.connect(endpoint)

    def request(self, command: str, args: dict[str, Any] | None = None) -> ControlReply:
        self.sock.send(encode(Control(command=command, args=dict(args or {}))))
        if not self.sock.poll(int(self.timeout_s * 1000)):
            raise ControlTimeout(
                f"no coordinator answered at {self.endpoint} within {self.timeout_s:.0f} s "
                "(is a run going? is --connect right?"
                + (" does the coordinator know this operator key?)" if self.curve else
                   " does the coordinator run with CURVE keys? then set ROCKNET_CURVE_DIR)")
            )
        try:
            return decode(self.sock.recv(), max_bytes=64 * CONTROL_MAX_BYTES, expect=ControlReply)
        except ProtocolError as exc:
            raise ControlTimeout(f"the coordinator at {self.endpoint} sent a bad reply: {exc}") from exc

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
