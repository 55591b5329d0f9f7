"""One interface for the ways devices run: :class:`NodeBackend`.

A backend starts the devices of a run and can kill, restart and stop them; the run engine
does not care which one is used, because every backend's devices speak to it through a
:class:`~coordinator.engine.link.NodeLink`. Four backends exist:

- ``processes`` (:mod:`coordinator.backends.processes`, the default): one OS process per
  device on this machine, over ZeroMQ;
- ``inprocess`` (:mod:`coordinator.backends.inprocess`): every device inside the
  coordinator's process, no sockets (sweeps, debugging, tests);
- ``compose`` (:mod:`coordinator.backends.compose`): one container per device, through
  ``docker compose`` / ``docker-compose`` and ``docker-compose.yml``;
- ``swarm`` (:mod:`coordinator.backends.swarm`): one Swarm task per device, through
  ``docker stack deploy`` and ``deploy/swarm/stack.yml`` (``{{.Task.Slot}}`` names the node).
"""

from __future__ import annotations

import signal
from typing import Protocol

#: Backends ``rocknet run --backend`` offers (compose runs through ``docker compose up``).
BACKENDS = ("processes", "inprocess")


def node_name(index: int) -> str:
    """Name of device ``index`` in local runs (``node-03`` is device 3)."""
    return f"node-{index:02d}"


class NodeBackend(Protocol):
    """Start, kill, restart and stop a run's devices (by index 0 .. n-1)."""

    def name(self, index: int) -> str:
        """The node name of device ``index`` (its routing id and checkpoint name)."""
        ...

    def start(self, index: int) -> None:
        """Start (or restart) device ``index``; a restarted device resumes from its checkpoint."""
        ...

    def start_all(self) -> None: ...

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """End device ``index`` at once, as a crash would."""
        ...

    def terminate(self, grace_s: float = 10.0) -> None:
        """Stop every device: let them exit by themselves for ``grace_s``, then force them."""
        ...

    def poll_exits(self) -> list[tuple[str, int]]:
        """``(name, exit code)`` of every device that ended since the last call."""
        ...

    def exit_codes(self) -> dict[str, int | None]:
        """Per node name: its exit code, or None while it runs."""
        ...
