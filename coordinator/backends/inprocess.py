"""The in-process backend: the whole run in this process, devices included, no sockets.

For sweeps, debugging and tests: the same engine and the same device agents as a run with
node processes (``coordinator/backends/processes.py``), so the same seed trains bitwise the
same model, with and without loss, in a fraction of the time (no processes to start, no
frames to encode).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coordinator.backends.interface import node_name
from coordinator.engine.clock import Clock
from coordinator.engine.engine import EngineOptions, RunEngine, RunSink
from coordinator.engine.link import Inbound
from coordinator.engine.inprocess_link import (
    AgentFactory,
    DeviceAgent,
    InProcessLink,
    LateRule,
    agent_factory,
    make_agents,
)
from coordinator.engine.setup import RunSetup


@dataclass
class InProcessRun:
    """A run built in this process: its engine, its link and its device agents."""

    engine: RunEngine
    link: InProcessLink
    agents: list[DeviceAgent]

    def run(self) -> RunEngine:
        """Train to the end (registration included); returns the engine for its results."""
        self.engine.run()
        return self.engine


def in_process_run(setup: RunSetup, options: EngineOptions | None = None, sink: RunSink | None = None,
                   late: LateRule | None = None, clock: Clock | None = None,
                   checkpoint_dir: Path | None = None,
                   idle: Callable[[float], None] | None = None,
                   tap: Callable[[Inbound], None] | None = None) -> InProcessRun:
    """An engine over ``setup.config.n_devices`` in-process agents (not started yet)."""
    agents = make_agents(setup.config.n_devices, node_name, checkpoint_dir)
    link = InProcessLink(agents, clock=clock, late=late, idle=idle, tap=tap)
    engine = RunEngine(setup, link, options, sink=sink, clock=clock)
    return InProcessRun(engine, link, agents)


class InProcessBackend:
    """The :class:`~coordinator.backends.interface.NodeBackend` of devices on an in-process link:
    killing one takes it off the link (its state is lost, as a process's would be);
    starting it again makes a fresh agent that resumes from its checkpoint."""

    def __init__(self, link: InProcessLink, checkpoint_dir: Path | None = None,
                 factory: AgentFactory | None = None) -> None:
        self.link = link
        self.checkpoint_dir = checkpoint_dir
        self.factory = factory or agent_factory()
        self.n_nodes = len(link.agents)

    def name(self, index: int) -> str:
        return node_name(index)

    def start(self, index: int) -> None:
        self.link.connect(self.factory(self.name(index), self.checkpoint_dir))

    def start_all(self) -> None:
        for index in range(self.n_nodes):
            if not self.link.connected(self.name(index)):
                self.start(index)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        self.link.disconnect(self.name(index))

    def terminate(self, grace_s: float = 10.0) -> None:
        """Nothing to wait for: agents end with the run."""

    def poll_exits(self) -> list[tuple[str, int]]:
        """Killed in-process devices fail their next send: the engine sees them there."""
        return []

    def exit_codes(self) -> dict[str, int | None]:
        return {self.name(i): None if self.link.connected(self.name(i)) else -signal.SIGKILL
                for i in range(self.n_nodes)}
