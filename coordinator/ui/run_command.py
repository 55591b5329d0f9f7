"""``rocknet run`` and ``rocknet coordinator``: from parsed flags to a run and its exit status.

A run of local node processes starts its zygote here, first thing (:func:`early_zygote`):
before the launcher's heavy imports (numba, the engine) and the setup, so that the zygote's
~0.5 s of loading the node code and kernels runs on the other core meanwhile. A finished
``--out`` is refused before that (nothing starts, nothing changes); whatever ends the run
early stops the zygote again (``run_testbed`` owns it once called, this module before).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Light (the standard library only): this module runs before the launcher's heavy imports.
from coordinator.backends.zygote_client import ZygoteClient, start_run_zygote

def run_args(a: argparse.Namespace) -> Any:
    """The :class:`~coordinator.service.run_setup.RunArgs` of parsed ``run``/``coordinator`` flags."""
    from coordinator.service.run_setup import RunArgs

    return RunArgs(
        dataset=a.dataset, nodes=a.nodes, epochs=a.epochs, protocol=a.protocol, loss=a.loss,
        topology=a.topology, seed=a.seed, data_dir=a.data_dir, batch_size=a.batch_size,
        optimizer=a.optimizer, num_features=a.num_features, missing_policy=a.missing_policy,
        ram_budget_bytes=a.ram_budget, eval_every=a.eval_every, mode=a.mode,
        profile=getattr(a, "profile", "tuned"), recipe=getattr(a, "recipe", "tuned"),
        split=a.split, quantization=getattr(a, "quantization", "auto"), head=getattr(a, "head", "auto"),
        model_overrides={} if getattr(a, "select", None) is None else {"selection": a.select},
    )


def early_zygote(a: argparse.Namespace, out: Path, spawn_nodes: bool) -> ZygoteClient | None:
    """The run's zygote, started before the launcher's heavy imports and setup (its loading
    then runs on the other core meanwhile), for one run of local node processes whose
    ``--out`` may be used; else None (``run_testbed`` refuses a finished ``--out`` itself)."""
    from coordinator.service.finished_run import finished_run_message

    if (not spawn_nodes or getattr(a, "backend", "processes") != "processes"
            or getattr(a, "seeds", 1) > 1 or finished_run_message(out) is not None):
        return None
    return start_run_zygote(out)


def cmd_run(a: argparse.Namespace, spawn_nodes: bool) -> int:
    """``rocknet run`` (``spawn_nodes``: local node processes) and ``rocknet coordinator``; the exit status."""
    out = a.out or _default_run_dir(a.dataset, a.nodes)
    zygote = early_zygote(a, out, spawn_nodes)
    try:
        return _run(a, spawn_nodes, out, zygote)
    finally:
        if zygote is not None:  # run_testbed stopped it already unless the run never began
            zygote.close(terminate=True)


def _default_run_dir(dataset: str, nodes: int) -> Path:
    from coordinator.service.results import default_run_dir

    return default_run_dir(dataset, nodes)


def _run(a: argparse.Namespace, spawn_nodes: bool, out: Path, zygote: ZygoteClient | None) -> int:
    from coordinator.service.scenario import ScenarioError, load_scenario
    from coordinator.service.launch import LaunchOptions, run_testbed
    from coordinator.service.results import print_summary_table
    from coordinator.service.server import CoordinatorOptions
    from coordinator.tools.run_failures import report_failure, run_failures
    from protocol.net.keys import CurveKeyError

    try:
        scenario = load_scenario(a.scenario) if a.scenario else None
    except ScenarioError as exc:
        print(f"rocknet: {exc}", file=sys.stderr)
        return 2
    options = CoordinatorOptions(
        host=a.host, node_port=a.node_port, feed_port=a.feed_port, control_port=a.control_port,
        deadline_s=a.deadline, down_after=a.down_after, lockstep=a.lockstep, realtime=a.realtime,
        curve_dir=a.curve_dir, in_process=getattr(a, "backend", "processes") == "inprocess",
        checkpoint_interval_s=a.checkpoint_interval,
    )
    launch = LaunchOptions(
        out_dir=out, coordinator=options, spawn_nodes=spawn_nodes,
        mem_limit_mb=getattr(a, "mem_limit_mb", 1024), reference=not a.no_reference,
        progress=not a.quiet, scenario=scenario,
    )
    if getattr(a, "seeds", 1) > 1:
        return _cmd_run_seeds(a, launch)
    try:
        summary = run_testbed(run_args(a), launch, zygote=zygote)
    except run_failures() as exc:
        return report_failure(exc, "rocknet", lambda: (
            "summary.json written; " if (out / "summary.json").exists() else "") + f"run directory: {out}")
    except CurveKeyError as exc:
        print(f"rocknet: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"rocknet: {exc} (is another testbed using the ports? pick others with "
              "--node-port/--feed-port/--control-port, or 0 for any free port)", file=sys.stderr)
        return 2
    if not a.quiet:
        print_summary_table(summary)
    print(f"run directory: {out}")
    return 0 if summary.get("phase") == "finished" else 1


def _cmd_run_seeds(a: argparse.Namespace, launch: Any) -> int:
    """``rocknet run --seeds K``: K runs in the pool (coordinator/tools/run_seeds.py)."""
    from coordinator.tools.run_failures import report_failure, run_failures
    from coordinator.tools.run_seeds import markdown, run_seeds

    try:
        result = run_seeds(run_args(a), launch, a.seeds, jobs=a.jobs,
                           echo=None if a.quiet else (lambda line: print(line, flush=True)))
    except run_failures() as exc:
        return report_failure(exc, "rocknet", f"run directories under {launch.out_dir}")
    print(markdown(result.runs, result.stats))
    print(f"run directories: {launch.out_dir}/seed<S>; aggregate: {launch.out_dir}/seeds.md")
    return 0 if all(r.finished for r in result.runs) else 1
