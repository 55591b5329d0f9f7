"""What the run engine does with the frames of the nodes themselves (:class:`NodeFrames`,
a base of :class:`~coordinator.engine.engine.RunEngine`): HELLO -> WELCOME registration,
frames of unknown nodes, signs of life, nodes that exit or say BYE, and the frames that
arrive before the run or outside the exchange they belong to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from coordinator.engine.link import Inbound, NodeLink
from coordinator.engine.registry import DOWN, Registry
from coordinator.engine.setup import RunSetup
from coordinator.engine.state import RunAborted, RunState
from protocol.config.run import RunConfig
from protocol.wire.frames import (
    PROTOCOL_VERSION,
    Bye,
    Error,
    Final,
    Heartbeat,
    Hello,
    Message,
    Welcome,
)

log = logging.getLogger("rocknet.coordinator")

__all__ = ["NodeFrames"]


class NodeFrames:
    """The node-frame handlers of :class:`~coordinator.engine.engine.RunEngine`, which sets
    the attributes below and defines :meth:`send` and :meth:`event`."""

    setup: RunSetup
    config: RunConfig
    link: NodeLink
    registry: Registry
    state: RunState
    finals: dict[int, Final]
    exit_probe: Callable[[], list[str]] | None

    if TYPE_CHECKING:
        def send(self, identity: bytes, msg: Message) -> bool: ...

        def event(self, event: str, **data: object) -> None: ...

    # ------------------------------------------------------------------ inbound
    def poll(self, timeout_s: float) -> list[Inbound]:
        """Frames of registered nodes that arrived within ``timeout_s``; HELLOs and frames of
        unknown nodes are handled here."""
        out: list[Inbound] = []
        if self.exit_probe is not None:
            for name in self.exit_probe():
                self._node_exited(name)
        for item in self.link.poll(timeout_s):
            msg = item.message
            if isinstance(msg, Hello):
                self._on_hello(item.identity, msg)
            elif self.registry.by_identity(item.identity) is None:
                # Not registered (or registered with a coordinator that crashed before its
                # first checkpoint): ask it to say HELLO.
                self.state.stale_frames += 1
                if not isinstance(msg, (Error, Bye)):
                    self.send(item.identity, Error(code="unknown_node", message="say HELLO first"))
            else:
                self._sign_of_life(item)
                out.append(item)
        return out

    def _sign_of_life(self, item: Inbound) -> None:
        """Any frame but BYE from a node taken down for silence brings it back up (it gets
        ROUNDs again from the next exchange)."""
        entry = self.registry.by_identity(item.identity)
        if (entry is not None and entry.status == DOWN and not entry.forced_down
                and not isinstance(item.message, (Bye, Error))):
            self.registry.heard(entry)
            self.event("node_up", device=entry.device, name=entry.name)

    def _on_hello(self, identity: bytes, msg: Hello) -> None:
        if msg.version != PROTOCOL_VERSION:
            self.state.bad_frames += 1
            self.send(identity, Error(
                code="version",
                message=f"node speaks protocol {msg.version}, coordinator {PROTOCOL_VERSION}: "
                "run the same rocknet version on both",
            ))
            return
        try:
            entry, rejoined = self.registry.register(msg.name, identity, msg.pid)
        except LookupError as exc:
            self.state.stale_frames += 1
            log.warning("refused node %r: %s", msg.name, exc)
            self.send(identity, Error(code="full", message=str(exc)))
            return
        self.send(identity, Welcome(device=entry.device, n_devices=self.config.n_devices,
                                    config=self.config.to_dict(), shard=self.setup.shard(entry.device)))
        self.event("node_rejoined" if rejoined else "node_registered", device=entry.device,
                   name=entry.name, registered=self.registry.registered)

    def _node_exited(self, name: str) -> None:
        entry = next((e for e in self.registry.entries() if e.name == name), None)
        if entry is not None and self.registry.gone(entry):
            self.event("node_down", device=entry.device, name=entry.name, reason="exited")

    def _node_left(self, identity: bytes, reason: str) -> None:
        entry = self.registry.by_identity(identity)
        if entry is not None and self.registry.gone(entry):
            self.event("node_down", device=entry.device, name=entry.name, reason=reason)

    def _early_frame(self, item: Inbound) -> None:
        msg = item.message
        if isinstance(msg, Heartbeat):
            return
        if isinstance(msg, Error):
            entry = self.registry.by_identity(item.identity)
            who = f"node {entry.name!r} (device {entry.device})" if entry else "a node"
            if entry is not None:
                self.registry.gone(entry)  # it exits: do not wait for its FINAL
            raise RunAborted(f"{who} refused the run: {msg.message}")
        if isinstance(msg, Bye):
            self._node_left(item.identity, msg.reason)
            return
        self.state.stale_frames += 1

    def late_frame(self, item: Inbound) -> None:
        """A frame outside the exchange it belongs to (FINAL, BYE, ERROR, heartbeat...)."""
        msg = item.message
        entry = self.registry.by_identity(item.identity)
        if isinstance(msg, Final):
            if entry is None or entry.device != msg.device:  # a FINAL for another device
                self.state.bad_frames += 1
                return
            self.finals[msg.device] = msg
        elif isinstance(msg, Bye):
            self._node_left(item.identity, msg.reason)
        elif isinstance(msg, Error):
            log.error("node %s reports: %s", entry.name if entry else "?", msg.message)
            if msg.code in ("ram_budget", "bad_config"):
                raise RunAborted(f"a node refused the run: {msg.message}")
        elif not isinstance(msg, Heartbeat):
            self.state.stale_frames += 1
