"""Run an experiment from Python: ``run_experiment(...)`` -> a typed :class:`ExperimentResult`.

    from coordinator.api import run_experiment

    result = run_experiment(dataset="GunPoint", nodes=5, epochs=2, split="label-sorted",
                            backend="inprocess", out="runs/gp-label-sorted")
    print(result.test_accuracy, result.label_histograms)

The keyword arguments are :class:`~coordinator.service.run_setup.RunArgs` fields (dataset,
nodes, epochs, protocol, loss, seed, split, mode, ...); ``backend`` is ``"inprocess"`` (every
device in this process) or ``"processes"`` (one OS process per device, as ``rocknet run``).
The run directory is written exactly as by ``rocknet run``. :func:`run_seeds` repeats one
over seeds, in parallel, as ``rocknet run --seeds K`` does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.results import default_run_dir
from coordinator.service.run_setup import RunArgs
from coordinator.service.scenario import load_scenario
from coordinator.service.server import CoordinatorOptions

BACKENDS = ("inprocess", "processes")


@dataclass(frozen=True)
class ExperimentResult:
    """One run's outcome (the headline fields of its ``summary.json``)."""

    run_dir: Path
    dataset: str
    nodes: int
    epochs: int
    split: str
    phase: str
    test_accuracy: float | None
    centralized_test_accuracy: float | None  # None with reference=False
    virtual_time_s: float  # emulated air time, s
    wall_time_s: float  # host time, s
    packet_loss_ratio: float
    label_histograms: list[list[int]]  # per device: training samples of each class


def run_experiment(backend: str = "inprocess", out: Path | str | None = None,
                   reference: bool = True, scenario: Path | str | None = None,
                   **run_args: Any) -> ExperimentResult:
    """Run one experiment; ``run_args`` are RunArgs fields (a wrong name is a clear error).

    ``scenario``: a TOML file with ``[[event]]`` fault events (a scenario or experiment file).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    allowed = {f.name for f in dataclasses.fields(RunArgs)}
    unknown = sorted(set(run_args) - allowed)
    if unknown:
        raise ValueError(f"unknown run argument(s) {unknown}; allowed: {', '.join(sorted(allowed))}")
    args = RunArgs(**run_args)
    run_dir = Path(out) if out is not None else default_run_dir(args.dataset, args.nodes)
    launch = LaunchOptions(
        out_dir=run_dir,
        coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0,
                                       in_process=backend == "inprocess"),
        reference=reference, progress=False,
        scenario=load_scenario(Path(scenario)) if scenario is not None else None,
    )
    s = run_testbed(args, launch)  # the summary, as written to summary.json
    return ExperimentResult(
        run_dir=run_dir, dataset=s["dataset"], nodes=int(s["nodes"]), epochs=int(s["epochs"]),
        split=s["split"], phase=s["phase"], test_accuracy=s["test_accuracy"],
        centralized_test_accuracy=s["centralized_test_accuracy"],
        virtual_time_s=float(s["virtual_time_s"]), wall_time_s=float(s["wall_time_s"]),
        packet_loss_ratio=float(s["packet_loss_ratio"]),
        label_histograms=[list(n["train_label_histogram"]) for n in s["per_node"]],
    )


def run_seeds(seeds: int, jobs: int | None = None, backend: str = "inprocess",
              out: Path | str | None = None, seed: int = 0, **kwargs: Any) -> list[ExperimentResult]:
    """``run_experiment`` once per seed ``seed .. seed + seeds - 1`` into ``out/seed<S>``, in
    parallel (:mod:`coordinator.tools.run_pool`: ``jobs`` at once, default as the cores allow);
    the results in seed order, identical to running them one after the other."""
    from coordinator.tools.run_pool import Task, processes_per_run, run_tasks
    from coordinator.tools.seeds import seed_dir, seed_values

    values = seed_values(seed, seeds)
    default_nodes = next(f.default for f in dataclasses.fields(RunArgs) if f.name == "nodes")
    nodes = int(kwargs.get("nodes", default_nodes))
    base = Path(out) if out is not None else default_run_dir(str(kwargs.get("dataset", "GunPoint")), nodes)
    tasks = [Task(_run_one, (backend, seed_dir(base, s), dict(kwargs, seed=s)),
                  processes=processes_per_run(nodes, backend == "inprocess"), label=f"seed {s}")
             for s in values]
    return run_tasks(tasks, jobs=jobs)


def _run_one(backend: str, out: Path, kwargs: dict[str, Any]) -> ExperimentResult:
    return run_experiment(backend=backend, out=out, **kwargs)
