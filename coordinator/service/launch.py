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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from coordinator.backends.base import NodeBackend
from coordinator.backends.inprocess import InProcessBackend
from coordinator.engine.inprocess import InProcessLink
from coordinator.backends.processes import ProcessBackend, node_env, warm_numba_cache
from coordinator.engine.accuracy import mode_summary
from coordinator.service.results import RunWriter, print_summary_table
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


def build_summary(coord: Coordinator, setup: RunSetup, wall_s: float, reference_acc: float | None) -> dict[str, Any]:
    """``summary.json``: the run's result, per node totals and the reference accuracy."""
    per_node = []
    finals = coord.finals
    accuracies = {}
    for entry in coord.registry.entries():
        totals = coord.air.totals[entry.device]
        final = finals.get(entry.device)
        evals = [p for p in (final.stats.get("passes", []) if final else []) if p["kind"] == "eval"]
        if evals and evals[-1]["total"]:
            accuracies[entry.device] = evals[-1]["accuracy"]
        per_node.append({
            "id": entry.device,
            "name": entry.name,
            "status": entry.status,
            "joins": entry.joins,
            "ram_bytes": int(final.stats.get("ram_bytes", 0)) if final else int(entry.last_stats.get("ram_bytes", 0)),
            "energy_mj": totals.energy_mj,
            "energy_parts_mj": dict(totals.energy_parts_mj),
            "radio_on_s": totals.radio_on_s,
            "rx_packets": totals.rx_packets,
            "lost_packets": totals.lost_packets,
            "tx_slots": totals.tx_slots,
            "compute_s_modeled": totals.compute_s_modeled,
            "test_accuracy": accuracies.get(entry.device),
            "final_collected": final is not None,
        })
    test_acc = None
    for device in sorted(accuracies):
        test_acc = accuracies[device]  # the initiator's view (lowest live device id)
        break
    rx = sum(coord.air.totals.rx_packets.tolist())
    lost = sum(coord.air.totals.lost_packets.tolist())
    summary = {
        "dataset": setup.config.dataset,
        "nodes": setup.config.n_devices,
        "protocol": setup.protocol,
        "mode": coord.status()["mode"],
        "epochs": setup.config.schedule.epochs,
        "rounds": coord.air.next_round,
        "rounds_planned": setup.stream.n_rounds,
        "phase": coord.state.phase,
        "stop_reason": coord.state.stop_reason,
        "test_accuracy": test_acc,
        "test_accuracy_mean_over_nodes": float(np.mean(list(accuracies.values()))) if accuracies else None,
        "centralized_test_accuracy": reference_acc,
        "virtual_time_s": coord.air.virtual_time_s,
        "wall_time_s": wall_s,
        "realtime_factor": coord.air.virtual_time_s / wall_s if wall_s > 0 else None,
        "packet_loss_ratio": lost / (rx + lost) if rx + lost else 0.0,
        "exchanges": len(coord.exchange_wall_s),
        "exchange_wall_s_total": float(sum(coord.exchange_wall_s)),
        "exchange_wall_ms_median": float(np.median(coord.exchange_wall_s) * 1e3) if coord.exchange_wall_s else None,
        "bad_frames": coord.state.bad_frames,
        "stale_frames": coord.state.stale_frames,
        "faults": setup.loss.describe(),
        "per_node": per_node,
    }
    summary.update(mode_summary(coord, setup, summary))  # training mode, traffic (docs/modes.md)
    return summary


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
    summary: dict[str, Any] = {}
    try:
        for s in previous:
            signal.signal(s, on_signal)
        if launch.coordinator.in_process:
            assert isinstance(coord.link, InProcessLink)
            backend = InProcessBackend(coord.link, checkpoint_dir=out / "checkpoints")
        elif launch.spawn_nodes:
            warm_numba_cache()
            backend = ProcessBackend(
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
        summary = build_summary(coord, setup, wall, None)
        coord.close()  # nothing answers any more: clients see the coordinator gone
        ref_acc = collect_reference(reference, reference_dir, timeout_s=600.0) if reference else None
        summary["centralized_test_accuracy"] = ref_acc
        if coord.finals:
            writer.weights(coord.finals)
        writer.summary(summary)
        writer.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return summary


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


def print_summary(summary: dict[str, Any]) -> None:
    print_summary_table(summary)


__all__ = ["LaunchOptions", "ProcessBackend", "RunAborted", "build_summary", "run_testbed"]
