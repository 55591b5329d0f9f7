"""``rocknet run --seeds K``: one run per seed, in parallel, and their mean ± std.

Seed ``k`` runs with ``--seed S + k`` (:func:`coordinator.tools.seeds.seed_values`) into
``OUT/seed<S+k>/`` (a complete run directory, as ``rocknet run`` writes it); the runs go to
the pool of :mod:`coordinator.tools.run_pool` (``--jobs``), every one on free ports (several
coordinators run at once). ``OUT/seeds.md``, ``OUT/seeds.csv`` and ``OUT/seeds.json`` hold
the per-seed values and the mean ± std (population std, ``ddof=0``) of the test accuracy,
the centralized reference's accuracy, the virtual time (s) and the wall time (s).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from coordinator.tools.run_pool import Task, processes_per_run, run_tasks
from coordinator.tools.seeds import SeedStat, cell, seed_dir, seed_values, stat

#: (SeedRun field, header, unit) aggregated over the seeds.
MEASURES = (
    ("test_accuracy", "test accuracy", ""),
    ("centralized_test_accuracy", "centralized accuracy", ""),
    ("virtual_time_s", "virtual time", "s"),
    ("wall_time_s", "wall time", "s"),
)


@dataclass(frozen=True)
class SeedRun:
    """One seed's run, from its summary (accuracies in [0, 1], times in s)."""

    seed: int
    run_dir: Path
    phase: str
    stop_reason: str | None
    test_accuracy: float | None
    centralized_test_accuracy: float | None
    virtual_time_s: float
    wall_time_s: float

    @classmethod
    def from_summary(cls, seed: int, run_dir: Path, s: dict[str, Any]) -> SeedRun:
        return cls(seed=seed, run_dir=run_dir, phase=str(s.get("phase")), stop_reason=s.get("stop_reason"),
                   test_accuracy=s.get("test_accuracy"),
                   centralized_test_accuracy=s.get("centralized_test_accuracy"),
                   virtual_time_s=float(s.get("virtual_time_s") or 0.0),
                   wall_time_s=float(s.get("wall_time_s") or 0.0))

    @property
    def finished(self) -> bool:
        return self.phase == "finished" and self.stop_reason is None


@dataclass(frozen=True)
class SeedRuns:
    """Every seed's run and each measure of :data:`MEASURES` over them."""

    runs: tuple[SeedRun, ...]
    stats: dict[str, SeedStat]
    files: tuple[Path, ...]


def run_seeds(args: Any, launch: Any, seeds: int, jobs: int | None = None,
              echo: Callable[[str], None] | None = None) -> SeedRuns:
    """Run ``args`` (RunArgs) once per seed into ``launch.out_dir/seed<S>``; write the tables.

    ``launch`` (LaunchOptions) is every run's, with its own directory, free ports and no
    progress bar. Raises what a run raised (SetupError, RunAborted) or
    :class:`~coordinator.tools.run_pool.RepetitionsStopped` for a signal.
    """
    from coordinator.service.launch import run_testbed

    out = Path(launch.out_dir)
    values = seed_values(args.seed, seeds)
    ports = replace(launch.coordinator, node_port=0, feed_port=0, control_port=0)
    tasks = [Task(run_testbed, (replace(args, seed=s),
                                replace(launch, out_dir=seed_dir(out, s), coordinator=ports, progress=False)),
                  processes=processes_per_run(args.nodes, launch.coordinator.in_process),
                  label=f"seed {s}")
             for s in values]

    def done(i: int, summary: dict[str, Any]) -> None:
        if echo is not None:
            echo(f"seed {values[i]}: {summary.get('phase')}, test accuracy {summary.get('test_accuracy')}")

    summaries = run_tasks(tasks, jobs=jobs, on_done=done)
    runs = tuple(SeedRun.from_summary(s, seed_dir(out, s), summ) for s, summ in zip(values, summaries))
    stats = {name: stat([getattr(r, name) for r in runs]) for name, _, _ in MEASURES}
    out.mkdir(parents=True, exist_ok=True)
    files = write_outputs(runs, stats, out)
    return SeedRuns(runs, stats, tuple(files))


def markdown(runs: Sequence[SeedRun], stats: dict[str, SeedStat]) -> str:
    """Per-seed rows, then the ``mean ± std`` row."""
    heads = [f"{h} ({u})" if u else h for _, h, u in MEASURES]
    lines = ["| seed | phase | " + " | ".join(heads) + " |", "|" + "---|" * (len(heads) + 2)]
    for r in runs:
        vals = ["–" if getattr(r, n) is None else f"{getattr(r, n):.4g}" for n, _, _ in MEASURES]
        lines.append(f"| {r.seed} | {r.phase} | " + " | ".join(vals) + " |")
    lines.append(f"| mean ± std ({len(runs)} seeds) | | "
                 + " | ".join(cell(stats[n]) for n, _, _ in MEASURES) + " |")
    return "\n".join(lines)


def write_outputs(runs: Sequence[SeedRun], stats: dict[str, SeedStat], out: Path) -> list[Path]:
    """``seeds.md``, ``seeds.csv`` (one line per seed, then ``mean`` and ``std``), ``seeds.json``."""
    md = out / "seeds.md"
    md.write_text(f"# {len(runs)} seeds (mean ± std over seeds)\n\n" + markdown(runs, stats) + "\n")
    path = out / "seeds.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "phase", "run_dir"] + [n for n, _, _ in MEASURES])
        for r in runs:
            w.writerow([r.seed, r.phase, str(r.run_dir)] + [getattr(r, n) for n, _, _ in MEASURES])
        for k in ("mean", "std"):
            w.writerow([k, "", ""] + [getattr(stats[n], k) for n, _, _ in MEASURES])
    js = out / "seeds.json"
    js.write_text(json.dumps({
        "seeds": [r.seed for r in runs],
        "runs": [dict(asdict(r), run_dir=str(r.run_dir)) for r in runs],
        "stats": {n: asdict(stats[n]) for n, _, _ in MEASURES},
    }, indent=2))
    return [md, path, js]
