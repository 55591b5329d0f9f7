"""The swarm backend: the testbed as a Docker Swarm stack (``deploy/swarm/stack.yml``).

One coordinator service pinned to a manager and one replicated ``node`` service on an overlay
network. Device ids come from task slots (slot S is ``node{S-1:02d}``, set through
``ROCKNET_TASK_SLOT={{.Task.Slot}}`` in the stack file), never from container or replica
names. Swarm's orchestrator replaces a killed task in the same slot, so the replacement has
the same name, gets its device id back and resumes from its checkpoint in the stack's
``runs`` volume.

Tasks are found through ``docker service ps`` and ``docker inspect`` of the task, whose
``Slot`` and ``Status.ContainerStatus`` say which container is which device. The images must
exist on every swarm node (``docker/build-images.sh``; several hosts: docs/docker.md).
:class:`SingleNodeSwarm` makes this machine a one-node swarm for as long as it is needed and
leaves it again when it was not one before.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from coordinator.backends.compose import docker, free_port

REPO = Path(__file__).resolve().parents[2]
STACK_FILE = REPO / "deploy" / "swarm" / "stack.yml"


def swarm_state() -> str:
    """This daemon's swarm state: ``inactive``, ``active``, ``pending``, ``error``, ``locked``."""
    return docker("info", "--format", "{{.Swarm.LocalNodeState}}")


@dataclass(frozen=True)
class TaskInfo:
    """One task of a swarm service, from ``docker inspect TASK``."""

    task_id: str
    slot: int
    state: str  # running, complete, failed, shutdown, ...
    desired_state: str
    container_id: str  # "" before the task got a container
    exit_code: int | None  # None while it has not exited


def _task_info(raw: dict[str, Any]) -> TaskInfo:
    status = raw.get("Status", {})
    container = status.get("ContainerStatus", {})
    state = str(status.get("State", ""))
    exited = state in ("complete", "failed", "shutdown", "rejected", "orphaned")
    return TaskInfo(
        task_id=str(raw["ID"]),
        slot=int(raw.get("Slot", 0)),
        state=state,
        desired_state=str(raw.get("DesiredState", "")),
        container_id=str(container.get("ContainerID", "")),
        exit_code=int(container.get("ExitCode", -1)) if exited else None,
    )


class SingleNodeSwarm:
    """Context manager: this daemon is a swarm manager inside it.

    ``docker swarm init --advertise-addr ADDR`` when it is not in a swarm; on exit it leaves
    (``docker swarm leave --force``) only a swarm it made itself. A daemon that is a worker
    or in another odd state is refused with what to do.
    """

    def __init__(self, advertise_addr: str = "127.0.0.1") -> None:
        self.advertise_addr = advertise_addr
        self.created = False

    def __enter__(self) -> SingleNodeSwarm:
        state = swarm_state()
        if state == "inactive":
            docker("swarm", "init", "--advertise-addr", self.advertise_addr, timeout=120)
            self.created = True
        elif state != "active":
            raise RuntimeError(f"this Docker daemon's swarm state is {state!r}: fix or leave "
                               "the swarm (`docker swarm leave --force`) first")
        elif docker("info", "--format", "{{.Swarm.ControlAvailable}}") != "true":
            raise RuntimeError("this Docker daemon is a swarm worker: deploy from a manager")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.created:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True,
                           timeout=120)


@dataclass
class SwarmBackend:
    """One stack of ``deploy/swarm/stack.yml`` (a :class:`~coordinator.backends.interface.NodeBackend`).

    ``env`` adds to the environment the stack file is interpolated with (``ROCKNET_NODES``,
    ``ROCKNET_TAG``, ...); the coordinator's control and feed ports are published on free ports
    of this host unless ``env`` names them.
    """

    env: dict[str, str] = field(default_factory=dict)
    stack: str = field(default_factory=lambda: f"rocknet{os.getpid()}{secrets.token_hex(3)}")
    control_port: int = field(default_factory=free_port)
    feed_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ROCKNET_")}
        self.full_env = {**inherited, "ROCKNET_CONTROL_PORT": str(self.control_port),
                         "ROCKNET_FEED_PORT": str(self.feed_port), **self.env}
        self.control_port = int(self.full_env["ROCKNET_CONTROL_PORT"])
        self.feed_port = int(self.full_env["ROCKNET_FEED_PORT"])

    @property
    def node_service(self) -> str:
        return f"{self.stack}_node"

    @property
    def coordinator_service(self) -> str:
        return f"{self.stack}_coordinator"

    @property
    def volume(self) -> str:
        return f"{self.stack}_runs"

    # ------------------------------------------------------------------ stack
    def deploy(self) -> None:
        """``docker stack deploy`` with the local images (no registry is asked for digests)."""
        done = subprocess.run(
            ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(STACK_FILE),
             self.stack], capture_output=True, text=True, env=self.full_env, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"docker stack deploy failed: {done.stderr.strip()[-2000:]}")

    def remove(self, timeout_s: float = 120) -> None:
        """Remove the stack, wait for its containers to go, remove its volume (never raises)."""
        subprocess.run(["docker", "stack", "rm", self.stack], capture_output=True, timeout=120)
        label = f"label=com.docker.stack.namespace={self.stack}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                                  capture_output=True, text=True, timeout=60).stdout.split()
            nets = subprocess.run(["docker", "network", "ls", "-q", "--filter", label],
                                  capture_output=True, text=True, timeout=60).stdout.split()
            if not left and not nets:
                break
            time.sleep(1)  # the engine removes them asynchronously; nothing to wait on
        subprocess.run(["docker", "volume", "rm", "-f", self.volume], capture_output=True,
                       timeout=60)

    def tasks(self, service: str | None = None) -> list[TaskInfo]:
        """Every task of ``service`` (default: the node service), old ones included."""
        ids = docker("service", "ps", "-q", "--no-trunc", service or self.node_service).split()
        if not ids:
            return []
        return [_task_info(raw) for raw in json.loads(docker("inspect", "--type", "task", *ids))]

    def task_of(self, index: int) -> TaskInfo | None:
        """The task that is meant to run device ``index`` now (slot ``index + 1``)."""
        current = [t for t in self.tasks() if t.slot == index + 1 and t.desired_state == "running"]
        return current[0] if current else None

    def logs(self, service: str | None = None, lines: int = 40) -> str:
        done = subprocess.run(["docker", "service", "logs", "--no-task-ids", "--tail", str(lines),
                               service or self.coordinator_service],
                              capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def control(self, command: str, timeout_s: float = 2) -> subprocess.CompletedProcess[str]:
        """``rocknet COMMAND`` (status --json, pause, resume, stop) at the published port."""
        verb, *rest = command.split()
        # The client flags belong to the verb (`inject --connect X loss 0`), not to a fault.
        cmd = [sys.executable, "-m", "coordinator.ui.cli", verb, "--timeout", str(timeout_s),
               "--connect", f"tcp://127.0.0.1:{self.control_port}", *rest]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=30)

    def status(self) -> dict[str, Any] | None:
        """``rocknet status --json`` through the published control port; None if no answer."""
        done = self.control("status --json")
        if done.returncode != 0:
            return None
        status: dict[str, Any] = json.loads(done.stdout)
        return status

    def read_run_file(self, relative: str, image: str | None = None) -> str:
        """A file of the run directory in the stack's volume (``summary.json``, ...)."""
        tag = self.full_env.get("ROCKNET_TAG", "latest")
        return docker("run", "--rm", "--network", "none", "-v", f"{self.volume}:/runs:ro",
                      image or f"rocknet-node:{tag}", "cat", f"/runs/run/{relative}")

    # ------------------------------------------------------------------ NodeBackend
    def name(self, index: int) -> str:
        return f"node{index:02d}"

    def start(self, index: int) -> None:
        """Nothing to do: Swarm's orchestrator replaces a failed task by itself (restart_policy)."""

    def start_all(self) -> None:
        self.deploy()

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Kill the container of device ``index`` (this host's; a one-node swarm has them all)."""
        task = self.task_of(index)
        if task is None or not task.container_id:
            raise RuntimeError(f"device {index} (slot {index + 1}) has no running container")
        docker("kill", "-s", signal.Signals(sig).name, task.container_id)

    def terminate(self, grace_s: float = 10.0) -> None:
        self.remove()

    def poll_exits(self) -> list[tuple[str, int]]:
        """Containers: a dead one is seen through ZMTP heartbeats and the deadline."""
        return []

    def exit_codes(self) -> dict[str, int | None]:
        """Per node name, its newest task's exit code (None while it runs)."""
        newest: dict[int, TaskInfo] = {}
        for task in self.tasks():
            if task.desired_state == "running" or task.slot not in newest:
                newest[task.slot] = task
        return {self.name(slot - 1): t.exit_code for slot, t in sorted(newest.items())}
