"""Run every benchmark in this folder and print one table of the figures they end with.

Each benchmark script prints its headline figures as its last lines, ``name: value``
(``ratio: 2.31``, ``mixer_21_ms: 0.120``); this runner runs them one after the other (each in
its own process, so one failing does not stop the rest), collects those lines and prints a
table with the targets of DESIGN.md where there is one. ``compose_up.py`` runs only when the
Docker images it needs exist (build them with docker/build-images.sh); it reports in JSON.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only air,transform] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: A trailing ``name: number [unit]`` line.
FIGURE_LINE = re.compile(r"^\s*([A-Za-z_][\w .\-/()%]*?)\s*:\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(\S*)\s*$")

#: Arguments per script for ``--quick`` (the others run with none).
QUICK_ARGS = {
    "air.py": ["--quick"],
    "transform.py": ["--repeats", "3"],
    "testbed.py": ["--repeat", "1"],
    "speculation.py": ["--repeat", "1", "--epochs", "2"],
    "compose_up.py": ["--repeats", "1"],
}
#: What a figure means and the target DESIGN.md holds it to: (description, op, bound).
KNOWN = {
    ("transform.py", "ratio"): ("numba shard transform / aeon MiniRocket, series/s", ">=", 1.5),
    ("air.py", "mixer_21_ms"): ("Mixer round resolved, 21 nodes (best block), ms", "<=", 0.25),
    ("air.py", "mixer_21_ms_median"): ("Mixer round resolved, 21 nodes (median block), ms", "<=", 0.25),
    ("testbed.py", "ratio"): ("lockstep coordinator round / bare ZeroMQ round trip", None, None),
    ("loss_robustness.py", "ratio"): ("accuracy at 30% i.i.d. loss / lossless (~ within 2 pp)", ">=", 0.98),
    ("compose_up.py", "registered_s"): ("compose up -> all nodes registered, s", None, None),
    ("compose_up.py", "first_round_s"): ("compose up -> first round done, s", None, None),
}


@dataclass
class Figure:
    script: str
    name: str
    value: float
    unit: str = ""
    description: str = ""
    target: str = ""
    met: bool | None = None


@dataclass
class Outcome:
    script: str
    returncode: int | None
    wall_s: float
    figures: list[Figure] = field(default_factory=list)
    note: str = ""


def trailing_figures(script: str, stdout: str) -> list[Figure]:
    """The ``name: value`` lines at the end of ``stdout`` (in print order)."""
    found: list[Figure] = []
    for line in reversed([x for x in stdout.splitlines() if x.strip()]):
        m = FIGURE_LINE.match(line)
        if m is None:
            break
        found.append(_figure(script, m.group(1), float(m.group(2)), m.group(3)))
    return list(reversed(found))


def _figure(script: str, name: str, value: float, unit: str = "") -> Figure:
    desc, op, bound = KNOWN.get((script, name), ("", None, None))
    fig = Figure(script, name, value, unit, desc)
    if op is not None and bound is not None:
        fig.target = f"{op} {bound:g}"
        fig.met = value >= bound if op == ">=" else value <= bound
    return fig


def docker_images_present() -> tuple[bool, str]:
    """Whether compose_up.py can run: docker reachable and its images built."""
    if shutil.which("docker") is None:
        return False, "docker is not installed"
    spec = importlib.util.spec_from_file_location("compose_up", HERE / "compose_up.py")
    if spec is None or spec.loader is None:
        return False, "compose_up.py not found"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for image in getattr(module, "IMAGES", ()):
        done = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
        if done.returncode != 0:
            return False, f"image {image} missing (docker/build-images.sh builds it)"
    return True, ""


def scripts() -> list[str]:
    """Every benchmark script here but this one, sorted."""
    return sorted(p.name for p in HERE.glob("*.py") if p.name not in (Path(__file__).name, "__init__.py"))


def run_script(name: str, quick: bool, timeout_s: float) -> Outcome:
    args = list(QUICK_ARGS.get(name, [])) if quick else []
    if name == "compose_up.py":
        args.append("--json")
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(HERE / name), *args], cwd=REPO, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Outcome(name, None, time.perf_counter() - started, note=f"timed out after {timeout_s:.0f} s")
    wall = time.perf_counter() - started
    out = Outcome(name, proc.returncode, wall)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        out.note = f"exit {proc.returncode}: {tail[-1] if tail else ''}"[:200]
        return out
    if name == "compose_up.py":
        try:
            data = json.loads(proc.stdout.strip().splitlines()[-1])
            run = data["runs"][0]
            out.figures = [_figure(name, k, float(v)) for k, v in run.items()]
        except (ValueError, KeyError, IndexError) as exc:
            out.note = f"unreadable JSON: {exc}"
        return out
    out.figures = trailing_figures(name, proc.stdout)
    if not out.figures:
        lines = [x for x in proc.stdout.splitlines() if x.strip()]
        out.note = f"no 'name: value' last line; last line: {lines[-1] if lines else '(none)'}"[:200]
    return out


def table(outcomes: list[Outcome]) -> str:
    """The summary table (plain text)."""
    rows = [("script", "figure", "value", "target", "ok", "meaning")]
    for o in outcomes:
        for f in o.figures:
            ok = "" if f.met is None else ("yes" if f.met else "NO")
            rows.append((o.script, f.name, f"{f.value:g}{(' ' + f.unit) if f.unit else ''}", f.target, ok,
                         f.description))
        if o.note:
            rows.append((o.script, "-", "-", "", "", o.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("wall time: " + ", ".join(f"{o.script} {o.wall_s:.0f} s" for o in outcomes))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (see QUICK_ARGS)")
    ap.add_argument("--only", default="", help="comma list of scripts (air,transform,...)")
    ap.add_argument("--skip", default="", help="comma list of scripts to leave out")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per script")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)

    def names(text: str) -> set[str]:
        return {x.strip() if x.strip().endswith(".py") else f"{x.strip()}.py" for x in text.split(",") if x.strip()}

    chosen = scripts()
    if a.only:
        unknown = names(a.only) - set(chosen)
        if unknown:
            print(f"run_all: no such benchmark {sorted(unknown)}; have {chosen}", file=sys.stderr)
            return 2
        chosen = [s for s in chosen if s in names(a.only)]
    chosen = [s for s in chosen if s not in names(a.skip)]
    outcomes = []
    for name in chosen:
        if name == "compose_up.py":
            ok, why = docker_images_present()
            if not ok:
                outcomes.append(Outcome(name, None, 0.0, note=f"skipped: {why}"))
                continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        outcomes.append(run_script(name, a.quick, a.timeout))
    if a.json:
        print(json.dumps([asdict(o) for o in outcomes], indent=2))
    else:
        print(table(outcomes))
    failed = any(o.returncode not in (0, None) or "timed out" in o.note for o in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
