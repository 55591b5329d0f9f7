"""The local-process backend: one OS process per device on this machine (the default).

Every node is its own OS process (``python -m node``) with ``NUMBA_NUM_THREADS=1``, in its
own session (Ctrl-C reaches only the launcher, which then stops the nodes in order so their
final state is collected), with ``PR_SET_PDEATHSIG`` so that no node outlives a killed
launcher; :meth:`ProcessBackend.terminate` stops them all (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.backends.interface import node_name


def node_env() -> dict[str, str]:
    """Environment of a node process: one numba/BLAS thread each (N nodes share the cores)."""
    env = dict(os.environ)
    env.update({
        "NUMBA_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    })
    return env


def warm_numba_cache(timeout_s: float = 600.0) -> None:
    """Compile the node kernels once before N processes would all compile them at once."""
    subprocess.run(
        [sys.executable, "-m", "node.offline.warmup"], env=node_env(), check=True, timeout=timeout_s,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class ProcessBackend:
    """N node processes on this machine (a :class:`~coordinator.backends.interface.NodeBackend`)."""

    connect: str
    n_nodes: int
    checkpoint_dir: Path | None = None
    mem_limit_mb: int = 1024
    log_dir: Path | None = None
    curve_dir: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def name(self, index: int) -> str:
        return node_name(index)

    def start(self, index: int) -> None:
        self.spawn(index)

    def spawn(self, index: int) -> subprocess.Popen[bytes]:
        """Start (or restart) node ``index``; a restarted node keeps its name and checkpoint."""
        name = self.name(index)
        cmd = [sys.executable, "-m", "node", "--connect", self.connect, "--name", name,
               "--parent-death", "--mem-limit-mb", str(self.mem_limit_mb)]
        if self.checkpoint_dir is not None:
            cmd += ["--checkpoint-dir", str(self.checkpoint_dir)]
        if self.curve_dir is not None:
            cmd += ["--curve-dir", str(self.curve_dir)]
        out: Any = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, env=node_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()
        self.processes[name] = proc
        return proc

    def start_all(self) -> None:
        for i in range(self.n_nodes):
            self.start(i)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        proc = self.processes.get(self.name(index))
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait()

    def terminate(self, grace_s: float = 10.0) -> None:
        """Stop every node: wait for clean exits, then SIGTERM, then SIGKILL."""
        deadline = time.monotonic() + grace_s
        for proc in self.processes.values():
            left = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(left, 0.01))
            except subprocess.TimeoutExpired:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def exit_codes(self) -> dict[str, int | None]:
        return {name: proc.poll() for name, proc in self.processes.items()}
