"""The compose backend: one container per device through ``docker-compose.yml``.

Works with Compose v2 (``docker compose``) and v1 (``docker-compose``). A project gets its own
name, so several testbeds can run side by side; the coordinator's control and feed ports are
published on free 127.0.0.1 ports. Services are ``coordinator`` and ``node00`` .. ``node19``
(service and hostname ``nodeNN`` is device NN). The images must exist (``docker/build-images.sh``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"


class ComposeUnavailable(RuntimeError):
    """Docker or Compose is missing here; the message says which."""


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when the plugin exists, else ``docker-compose`` (v1), else None."""
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker(*args: str, timeout: float = 60) -> str:
    """Run ``docker ARGS``; its stdout, or RuntimeError with its stderr."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def container_state(container: str) -> dict[str, Any]:
    """``docker inspect``'s State of a container (Status, Running, OOMKilled, ExitCode, ...)."""
    state: dict[str, Any] = json.loads(docker("inspect", "-f", "{{json .State}}", container))
    return state


@dataclass
class ComposeBackend:
    """One compose project (a :class:`~coordinator.backends.interface.NodeBackend` of containers).

    ``env`` adds to the environment compose interpolates (``ROCKNET_NODES``, ...);
    ``override`` is an extra compose file's text (written to ``work_dir``).
    """

    env: dict[str, str] = field(default_factory=dict)
    override: str | None = None
    work_dir: Path | None = None
    project: str = field(default_factory=lambda: f"rocknet-{os.getpid()}-{secrets.token_hex(3)}")
    control_port: int = field(default_factory=free_port)
    feed_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        compose = compose_command()
        if compose is None:
            raise ComposeUnavailable("neither `docker compose` nor `docker-compose` is installed")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ROCKNET_")}
        self.full_env = {**inherited, "ROCKNET_HOST_CONTROL_PORT": str(self.control_port),
                         "ROCKNET_HOST_FEED_PORT": str(self.feed_port), **self.env}
        self.compose = [*compose, "-p", self.project, "-f", str(COMPOSE_FILE)]
        if self.override is not None:
            if self.work_dir is None:
                raise ValueError("an override needs a work_dir to write it to")
            path = Path(self.work_dir) / f"{self.project}.override.yml"
            path.write_text(self.override)
            self.compose += ["-f", str(path)]

    # ------------------------------------------------------------------ compose
    def run(self, *args: str, timeout: float = 180) -> str:
        """``compose ARGS`` for this project; its stdout, or RuntimeError with its stderr."""
        done = subprocess.run([*self.compose, *args], capture_output=True, text=True,
                              env=self.full_env, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def up(self, *services: str) -> None:
        """Create and start ``services`` (all when none is named), detached."""
        self.run("up", "-d", *services, timeout=300)

    def down(self) -> None:
        """Remove the project's containers, networks and volumes (never raises)."""
        subprocess.run([*self.compose, "down", "-v", "--remove-orphans", "-t", "5"],
                       capture_output=True, env=self.full_env, timeout=180)

    def container(self, service: str) -> str:
        """The container id of ``service``."""
        cid = self.run("ps", "-q", service).strip()
        if not cid:
            raise RuntimeError(f"no container for service {service} in project {self.project}")
        return cid

    def logs(self, service: str = "coordinator", lines: int = 40) -> str:
        try:
            return self.run("logs", "--no-color", "--tail", str(lines), service, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"

    def status(self) -> dict[str, Any] | None:
        """``rocknet status --json`` through the published control port; None if no answer."""
        cmd = [sys.executable, "-m", "coordinator.ui.cli", "status", "--json", "--timeout", "2",
               "--connect", f"tcp://127.0.0.1:{self.control_port}"]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=30)
        if done.returncode != 0:
            return None
        status: dict[str, Any] = json.loads(done.stdout)
        return status

    # ------------------------------------------------------------------ NodeBackend
    def name(self, index: int) -> str:
        return f"node{index:02d}"

    def start(self, index: int) -> None:
        docker("start", self.container(self.name(index)))

    def start_all(self) -> None:
        self.up()

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        docker("kill", "-s", signal.Signals(sig).name, self.container(self.name(index)))

    def terminate(self, grace_s: float = 10.0) -> None:
        self.down()

    def poll_exits(self) -> list[tuple[str, int]]:
        """Containers: a dead one is seen through ZMTP heartbeats and the deadline."""
        return []

    def exit_codes(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for line in self.run("ps", "-q").split():
            state = container_state(line)
            name = docker("inspect", "-f", "{{index .Config.Labels \"com.docker.compose.service\"}}", line)
            out[name] = None if state.get("Running") else int(state.get("ExitCode", -1))
        return out
