"""The in-process link: every device agent inside the coordinator's process, no sockets.

Each device is the same :class:`DeviceAgent` a node process runs (``node/agent.py``), found
through the ``rocknet.device_agents`` entry point, so the coordinator package does not import
the node package and both backends run the very same device code: the same frames in the
same order give bitwise the same model. Messages are handed over as objects (no encoding):
an agent answers synchronously, so the link is :meth:`~InProcessLink.quiet` whenever its
inbox is empty and the engine never waits for a reply that cannot come.

``late(exchange, device)`` emulates a device that misses an exchange's deadline (a hung or
slow MCU): it computes its TX, but the TX arrives only after the engine gave up on it (with
the next exchange's traffic), where the engine counts it stale, as a late TX from a process.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from coordinator.engine.clock import Clock, SystemClock
from coordinator.engine.link import Inbound, SendStatus
from protocol.wire.frames import Hello, Message, Round, Tx

#: Entry-point group through which a device implementation offers its agent factory.
AGENT_GROUP = "rocknet.device_agents"


class DeviceAgent(Protocol):
    """One device's side of the wire without the wire (``node.agent.NodeAgent``)."""

    @property
    def name(self) -> str: ...

    def hello(self) -> Hello: ...

    def handle(self, msg: Message) -> list[Message]: ...


class AgentFactory(Protocol):
    def __call__(self, name: str, checkpoint_dir: Path | None = None) -> DeviceAgent: ...


class AgentsUnavailable(RuntimeError):
    """No device implementation is installed (the fix: install the project with its nodes)."""


def agent_factory(name: str = "node") -> AgentFactory:
    """The agent factory registered as ``name`` in :data:`AGENT_GROUP`."""
    found = [ep for ep in entry_points(group=AGENT_GROUP) if ep.name == name]
    if not found:
        raise AgentsUnavailable(
            f"no device agents named {name!r} in entry-point group {AGENT_GROUP!r}: "
            "install the project (pip install -e .) so that the in-process backend finds the nodes")
    factory: AgentFactory = found[0].load()
    return factory


#: ``late(exchange, device)``: True if that device's TX misses the deadline.
LateRule = Callable[[int, int], bool]


class InProcessLink:
    """A :class:`~coordinator.engine.link.NodeLink` over agents in this process."""

    def __init__(self, agents: Sequence[DeviceAgent], clock: Clock | None = None,
                 late: LateRule | None = None, idle: Callable[[float], None] | None = None,
                 tap: Callable[[Inbound], None] | None = None) -> None:
        """``idle(seconds)`` is called when the engine waits with nothing to deliver (the
        service serves its control socket there); by default the clock sleeps. ``tap`` sees
        every frame a device sends in time (a capture of the uplink, for analysis)."""
        self.clock = clock or SystemClock()
        self.late = late
        self.idle = idle
        self.tap = tap
        self.agents = {agent.name.encode(): agent for agent in agents}
        if len(self.agents) != len(agents):
            raise ValueError("two in-process agents share a name; names must be unique")
        self.down: set[bytes] = set()
        self.late_frames = 0
        self._inbox: deque[Inbound] = deque(Inbound(i, a.hello()) for i, a in self.agents.items())
        self._late: list[Inbound] = []  # TXs past their deadline, delivered with the next exchange

    def send(self, identity: bytes, message: Message) -> SendStatus:
        agent = self.agents.get(identity)
        if agent is None or identity in self.down:
            return SendStatus.GONE
        if isinstance(message, Round) and self._late and self._late[0].message.exchange != message.exchange:  # type: ignore[attr-defined]
            self._inbox.extend(self._late)  # they arrive now, after their exchange
            self._late.clear()
        replies = agent.handle(message)
        late = (isinstance(message, Round) and self.late is not None
                and self.late(message.exchange, self._device_of(replies)))
        for reply in replies:
            item = Inbound(identity, reply)
            if late and isinstance(reply, Tx):
                self.late_frames += 1
                self._late.append(item)
                continue
            if self.tap is not None:
                self.tap(item)
            self._inbox.append(item)
        return SendStatus.SENT

    @staticmethod
    def _device_of(replies: list[Message]) -> int:
        return next((r.device for r in replies if isinstance(r, Tx)), -1)

    def poll(self, timeout_s: float) -> list[Inbound]:
        if not self._inbox:
            if self.idle is not None:
                self.idle(timeout_s)
            else:
                self.clock.sleep(timeout_s)
        out = list(self._inbox)
        self._inbox.clear()
        return out

    def quiet(self) -> bool:
        return not self._inbox

    def disconnect(self, name: str) -> None:
        """Take a device off the link (as a killed process): sends to it fail from now on."""
        self.down.add(name.encode())

    def connect(self, agent: DeviceAgent) -> None:
        """Put ``agent`` on the link under its name (replacing one of that name) and let it
        say HELLO, as a (re)started node process does."""
        identity = agent.name.encode()
        self.agents[identity] = agent
        self.down.discard(identity)
        self._inbox.append(Inbound(identity, agent.hello()))

    def connected(self, name: str) -> bool:
        identity = name.encode()
        return identity in self.agents and identity not in self.down

    def close(self) -> None:
        self._inbox.clear()


def make_agents(n_devices: int, names: Callable[[int], str], checkpoint_dir: Path | None = None,
                implementation: str = "node") -> list[DeviceAgent]:
    """``n_devices`` fresh agents named ``names(d)``."""
    factory = agent_factory(implementation)
    return [factory(names(d), checkpoint_dir) for d in range(n_devices)]
