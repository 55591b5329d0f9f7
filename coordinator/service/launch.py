"""Run a whole testbed from this process: the coordinator here, the devices on a backend.

``rocknet run`` and ``rocknet coordinator`` come here: build the setup (refusing a finished
run directory before anything changes), start the coordinator and the backend's devices
(node processes, or in-process devices), run, and whatever ends the run (its end, ``rocknet
stop``, SIGINT/SIGTERM, a refusal, a bad setup) stop what is left and write ``summary.json``.

The local-process backend's zygote starts first (right after the refusal check; ``rocknet
run`` starts it even before its own imports and hands it in), so that its ~0.5 s of loading
runs beside the setup instead of after it; meanwhile the coordinator loads its own air kernel
(``coordinator/service/air_warmup.py``); the centralized reference is then forked by the zygote
too.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable


from coordinator.backends.interface import NodeBackend
from coordinator.backends.inprocess import InProcessBackend
from coordinator.engine.inprocess_link import InProcessLink
from coordinator.backends.processes import ProcessBackend, ZygoteClient, start_run_zygote
from coordinator.service.air_warmup import warm_air
from coordinator.service.summary import RunSummary, build_summary
from coordinator.service.results import RunWriter
from coordinator.service.reference import OFF, Reference, ReferenceResult
from coordinator.service.run_setup import RunArgs, RunSetup, SetupError, build_setup
from coordinator.service.server import FINISHED, Coordinator, CoordinatorOptions, RunAborted
from coordinator.service.signals import RunInterrupted, StopSignals
from coordinator.service.finished_run import finished_run_message

log = logging.getLogger("rocknet.launcher")


class FinishedRunDirectory(SetupError):
    """``--out`` names a run that already ran to its end: nothing there may change."""


def refuse_finished_run(out: Path) -> None:
    """Raise :class:`FinishedRunDirectory` if ``out`` holds a run that finished (its
    ``summary.json`` says so); a run that was stopped or killed may be resumed there."""
    message = finished_run_message(out)
    if message is not None:
        raise FinishedRunDirectory(message)


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


def uses_zygote(launch: LaunchOptions) -> bool:
    """Whether this run's devices are forked by a zygote (local node processes)."""
    return launch.spawn_nodes and not launch.coordinator.in_process


def run_testbed(
    args: RunArgs,
    launch: LaunchOptions,
    on_started: Callable[[Coordinator, NodeBackend | None], None] | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    zygote: ZygoteClient | None = None,
) -> dict[str, Any]:
    """Build, run and summarize one testbed run; returns the summary (also in summary.json).

    ``zygote``: one the caller started already for this run (:func:`start_run_zygote` on
    ``launch.out_dir``, after :func:`refuse_finished_run`); this function owns it from here
    on (it forks the nodes, or it is stopped whatever ends the run). Without it, a run with
    local node processes starts its zygote right after the refusal check.

    Raises :class:`~coordinator.service.run_setup.SetupError` for a bad configuration or a
    finished run directory (before anything starts or changes, or with the zygote stopped
    again), :class:`RunAborted` when a node refuses the run, :class:`RunInterrupted` for a
    second SIGINT/SIGTERM (the summary is written all the same once the run started).
    """
    out = Path(launch.out_dir)
    try:
        refuse_finished_run(out)
        if zygote is None and uses_zygote(launch):
            zygote = start_run_zygote(out)
        # Before StopSignals: a Ctrl-C while this line is written is a KeyboardInterrupt,
        # which logging lets through (it swallows an Exception such as RunInterrupted, and
        # the setup would go on) - the moment a script that waits for this line signals.
        log.info("setting up: %s, %d devices, out %s", args.dataset, args.nodes, out)
    except BaseException as exc:
        if zygote is not None:
            zygote.close(terminate=True)
        if isinstance(exc, KeyboardInterrupt):
            raise RunInterrupted("interrupted by SIGINT") from None
        raise
    with StopSignals() as signals:  # from here on, Ctrl-C ends the setup at once
        try:
            setup = build_setup(args)
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
            if signals.received:  # its RunInterrupted was swallowed (a library's ``except Exception``)
                raise RunInterrupted(f"interrupted by {signals.received[0]}")
        except BaseException:
            if zygote is not None:  # a bad setup (or Ctrl-C in it): no process stays behind
                zygote.close(terminate=True)
            raise
        signals.request_stop = coord.request_stop
        started = time.monotonic()
        backend: NodeBackend | None = None
        reference: Reference | None = None
        try:
            if uses_zygote(launch):  # the coordinator's kernel while the nodes' loads (air_warmup.py)
                warm_air(coord.engine.air)
            backend = _start_backend(coord, setup, launch, out, zygote)
            if launch.reference:
                # After the nodes (they hold up the run's start, the reference does not);
                # forked by the same zygote when there is one.
                reference = Reference(setup, zygote=_zygote_of(backend))
            if on_started is not None:
                on_started(coord, backend)
            progress.start()
            coord.run()
        finally:
            progress.stop()
            if backend is None and zygote is not None:  # the backend never took it
                zygote.close(terminate=True)
            summary = _finish(coord, setup, launch, backend, reference, writer, time.monotonic() - started)
    return summary.to_json()


def _zygote_of(backend: NodeBackend | None) -> ZygoteClient | None:
    return backend.zygote_client if isinstance(backend, ProcessBackend) else None


def _start_backend(coord: Coordinator, setup: RunSetup, launch: LaunchOptions, out: Path,
                   zygote: ZygoteClient | None) -> NodeBackend | None:
    if launch.coordinator.in_process:
        assert isinstance(coord.link, InProcessLink)
        return InProcessBackend(coord.link, checkpoint_dir=out / "checkpoints")
    if not launch.spawn_nodes:
        return None
    backend = ProcessBackend(  # a pre-warmed zygote forks every node (coordinator/backends/processes.py)
        connect=coord.endpoints.nodes,
        n_nodes=setup.config.n_devices,
        checkpoint_dir=out / "checkpoints",
        mem_limit_mb=launch.mem_limit_mb,
        log_dir=out / "logs" if launch.node_logs else None,
        curve_dir=launch.coordinator.curve_dir,
        prestarted=zygote,
    )
    try:
        backend.start_all()
    except BaseException:
        backend.terminate(grace_s=0.0)  # whatever it started (and its zygote) goes
        raise
    # A node process that dies is down at once (the zygote reports its exit), not after a deadline.
    coord.engine.exit_probe = lambda: [name for name, _code in backend.poll_exits()]
    return backend


def _finish(coord: Coordinator, setup: RunSetup, launch: LaunchOptions, backend: NodeBackend | None,
            reference: Reference | None, writer: RunWriter, wall_s: float) -> RunSummary:
    """Stop what is left, then write the summary and the weights (whatever ended the run)."""
    complete = coord.state.phase == FINISHED and coord.state.stop_reason is None
    # The reference first: it may be a child of the zygote, which the backend stops next
    # (meanwhile a finished run's nodes are exiting by themselves after STOP).
    if reference is None:
        ref = ReferenceResult(None, OFF)
    else:
        ref = reference.collect(timeout_s=600.0) if complete else reference.abandon()
    if backend is not None:
        # A finished run's nodes exit by themselves after STOP; a stopped or aborted run may
        # have nodes that never registered (nothing will stop them but us).
        backend.terminate(grace_s=10.0 if complete else 1.0)
    summary = build_summary(coord.engine, setup, wall_s, None)
    coord.close()  # nothing answers any more: clients see the coordinator gone
    backend_name = "inprocess" if launch.coordinator.in_process else ("processes" if launch.spawn_nodes else "external")
    summary = replace(summary.with_reference(ref.test_accuracy),
                      extra={"backend": backend_name, "reference": ref.status})
    if coord.finals:
        writer.weights(coord.finals)
    writer.summary(summary.to_json())
    writer.close()
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


__all__ = ["FinishedRunDirectory", "LaunchOptions", "ProcessBackend", "RunAborted", "RunInterrupted",
           "refuse_finished_run", "run_testbed", "uses_zygote"]
