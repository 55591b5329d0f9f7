"""Run a whole testbed on this machine: the coordinator in this process, N node processes.

The local-process backend is one of two backends (the other is docker-compose.yml): it
starts every node as its own OS process (``python -m node``) with ``NUMBA_NUM_THREADS=1``,
in its own session (Ctrl-C reaches only the launcher, which then stops the nodes in order so
their final state is collected), with ``PR_SET_PDEATHSIG`` so that no node outlives a killed
launcher, and stops them all (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from coordinator.backends.interface import NodeBackend
from coordinator.backends.inprocess import InProcessBackend
from coordinator.engine.inprocess_link import InProcessLink
from coordinator.backends.processes import ProcessBackend, node_env
from coordinator.service.summary import RunSummary, build_summary
from coordinator.service.results import RunWriter
from coordinator.service.server import Coordinator, CoordinatorOptions, RunAborted
from coordinator.service.run_setup import RunArgs, RunSetup, build_setup

log = logging.getLogger("rocknet.launcher")


def start_reference(setup: RunSetup, work_dir: Path) -> subprocess.Popen[bytes] | None:
    """Train the centralized reference in a subprocess (the coordinator does not import
    ``node``); returns the process, or None when there is nothing to evaluate."""
    if len(setup.y_test) == 0:
        return None
    npz = work_dir / "reference_input.npz"
    np.savez(npz, x_train=setup.x_train, y_train=setup.y_train, x_test=setup.x_test,
             y_test=setup.y_test)
    cfg = work_dir / "reference_config.json"
    cfg.write_text(json.dumps({
        "model": setup.config.model.to_dict(),
        "n_shards": setup.config.n_devices,
        "n_classes": setup.config.n_classes,
        "eval_every": setup.config.schedule.eval_every,
    }))
    out = work_dir / "reference.json"
    return subprocess.Popen(
        [sys.executable, "-m", "node.offline.reference", "--npz", str(npz), "--config", str(cfg),
         "--out", str(out)],
        env=node_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def collect_reference(proc: subprocess.Popen[bytes] | None, work_dir: Path, timeout_s: float) -> float | None:
    if proc is None:
        return None
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
    try:
        return float(json.loads((work_dir / "reference.json").read_text())["test_accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class LaunchOptions:
    """How ``rocknet run`` runs (besides the run's own arguments)."""

    out_dir: Path
    coordinator: CoordinatorOptions = field(default_factory=CoordinatorOptions)
    spawn_nodes: bool = True
    mem_limit_mb: int = 1024
    reference: bool = True
    progress: bool = True
    scenario: list[Any] | None = None
    node_logs: bool = True


def run_testbed(
    args: RunArgs,
    launch: LaunchOptions,
    on_started: Callable[[Coordinator, NodeBackend | None], None] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Build, run and summarize one testbed run; returns the summary (also in summary.json).

    Raises :class:`~coordinator.service.run_setup.SetupError` for a bad configuration (before anything
    starts) and :class:`RunAborted` when a node refuses the run.
    """
    setup = build_setup(args)
    out = Path(launch.out_dir)
    writer = RunWriter(out)
    writer.config({"args": asdict(args), "run": setup.config.to_dict(),
                   "topology": setup.topology.to_dict(), "coordinator": asdict(launch.coordinator)})
    progress = _Progress(setup, enabled=launch.progress)

    def record_round(record: dict[str, Any]) -> None:
        progress.update(record)
        if on_round is not None:
            on_round(record)

    if launch.coordinator.curve_dir is not None and launch.spawn_nodes:
        # Local runs make their own keys (coordinator, operator, one per node name).
        from protocol.net.keys import ensure_keys, local_node_names

        ensure_keys(launch.coordinator.curve_dir, local_node_names(setup.config.n_devices))
    coord = Coordinator(setup, launch.coordinator, on_round=record_round, on_event=on_event,
                        scenario=launch.scenario, writer=writer, checkpoint_dir=out)
    backend: NodeBackend | None = None
    reference_dir = Path(tempfile.mkdtemp(prefix="rocknet-ref-"))
    reference = start_reference(setup, reference_dir) if launch.reference else None
    # Signal handlers can only be installed from the main thread (tests run us in others).
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}

    def on_signal(signum: int, _frame: Any) -> None:
        coord.state.stop_reason = f"signal {signal.Signals(signum).name}"

    started = time.monotonic()
    summary: RunSummary | None = None
    try:
        for s in previous:
            signal.signal(s, on_signal)
        if launch.coordinator.in_process:
            assert isinstance(coord.link, InProcessLink)
            backend = InProcessBackend(coord.link, checkpoint_dir=out / "checkpoints")
        elif launch.spawn_nodes:
            backend = ProcessBackend(  # start_all warms the kernels (the zygote) first
                connect=coord.endpoints.nodes,
                n_nodes=setup.config.n_devices,
                checkpoint_dir=out / "checkpoints",
                mem_limit_mb=launch.mem_limit_mb,
                log_dir=out / "logs" if launch.node_logs else None,
                curve_dir=launch.coordinator.curve_dir,
            )
            backend.start_all()
        if on_started is not None:
            on_started(coord, backend)
        progress.start()
        coord.run()
    finally:
        progress.stop()
        if backend is not None:
            # A finished run's nodes exit by themselves after STOP; an aborted run may have
            # nodes that never registered (nothing will stop them but us).
            from coordinator.service.server import FINISHED

            backend.terminate(grace_s=10.0 if coord.state.phase == FINISHED else 2.0)
        wall = time.monotonic() - started
        summary = build_summary(coord.engine, setup, wall, None)
        summary = replace(summary, extra={"backend": "inprocess" if launch.coordinator.in_process else
                                          ("processes" if launch.spawn_nodes else "external")})
        coord.close()  # nothing answers any more: clients see the coordinator gone
        ref_acc = collect_reference(reference, reference_dir, timeout_s=600.0) if reference else None
        summary = summary.with_reference(ref_acc)
        if coord.finals:
            writer.weights(coord.finals)
        writer.summary(summary.to_json())
        writer.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert summary is not None
    return summary.to_json()


class _Progress:
    """A rich progress bar over rounds: epoch, round, accuracy."""

    def __init__(self, setup: RunSetup, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = setup.stream.n_rounds
        self._bar: Any = None
        self._task: Any = None

    def start(self) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), transient=False)
        self._task = self._bar.add_task("rounds", total=self.total)
        self._bar.start()

    def update(self, record: dict[str, Any]) -> None:
        if self._bar is None:
            return
        acc = record.get("eval_accuracy")
        train = record.get("train_accuracy")
        text = f"epoch {record.get('epoch')}  train acc {_f(train)}  eval acc {_f(acc)}"
        self._bar.update(self._task, completed=record["round"] + 1, description=text)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


__all__ = ["LaunchOptions", "ProcessBackend", "RunAborted", "run_testbed"]
