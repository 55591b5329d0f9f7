"""The zygote started before the run's setup (``rocknet run`` starts it first thing, so that
its loading overlaps the launcher's imports): whatever ends the run before its nodes start (a
bad setup, a finished ``--out``, a signal, a killed launcher) leaves no process behind and no
file in the run directory; the in-process backend starts none; the zygote's log keeps what
it wrote before it was told where its log goes; the reference is forked by it too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from coordinator.backends.processes import ZygoteError, start_run_zygote
from coordinator.service.launch import FinishedRunDirectory, LaunchOptions, run_testbed
from coordinator.service.reference import TRAINED, Reference
from coordinator.service.run_setup import RunArgs, SetupError, build_setup
from coordinator.service.server import CoordinatorOptions
from coordinator.ui.cli import build_parser
from coordinator.ui.run_command import early_zygote

pytestmark = pytest.mark.usefixtures("warm_numba")

ROOT = Path(__file__).resolve().parents[2]
FREE_PORTS = CoordinatorOptions(node_port=0, feed_port=0, control_port=0)
TINY = ("--nodes", "2", "--epochs", "1", "--num-features", "1000", "--node-port", "0",
        "--feed-port", "0", "--control-port", "0")


def processes_of(out: Path) -> list[psutil.Process]:
    """Live processes (zombies aside) whose command line names ``out`` (zygote, nodes)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(out) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def rocknet(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coordinator.ui.cli", *argv], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


def test_a_bad_setup_stops_the_zygote_started_before_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    zygote = start_run_zygote(out)
    assert processes_of(out) == [psutil.Process(zygote.pid)]
    with pytest.raises(SetupError, match="NoSuchDataset"):
        run_testbed(RunArgs(dataset="NoSuchDataset", nodes=2), LaunchOptions(out_dir=out, coordinator=FREE_PORTS),
                    zygote=zygote)
    assert not psutil.pid_exists(zygote.pid)  # reaped: not even a zombie is left
    assert processes_of(out) == [] and not out.exists()


def test_a_bad_setup_leaves_no_process_when_run_testbed_started_the_zygote(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(SetupError, match="nodes"):
        run_testbed(RunArgs(dataset="GunPoint", nodes=0), LaunchOptions(out_dir=out, coordinator=FREE_PORTS))
    assert processes_of(out) == [] and not out.exists()


def test_the_cli_reports_a_bad_dataset_clearly_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = rocknet("run", "--dataset", "NoSuchDataset", "--out", str(out), *TINY)
    assert done.returncode == 2, done.stderr
    assert "NoSuchDataset" in done.stderr and "Traceback" not in done.stderr
    assert processes_of(out) == [] and not out.exists()


def test_a_finished_run_directory_is_refused_before_any_zygote_starts(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=1000)
    launch = LaunchOptions(out_dir=out, progress=False, reference=False,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0, in_process=True))
    assert run_testbed(args, launch)["phase"] == "finished"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    parsed = build_parser(tools=False).parse_args(["run", "--out", str(out), *TINY])
    assert early_zygote(parsed, out, spawn_nodes=True) is None  # refused: none started
    done = rocknet("run", "--out", str(out), *TINY)
    assert done.returncode == 2 and "holds a finished run" in done.stderr
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before and not (out / "logs").exists()
    # run_testbed refuses it as well, and stops a zygote it was handed.
    zygote = start_run_zygote(out)
    with pytest.raises(FinishedRunDirectory):
        run_testbed(args, LaunchOptions(out_dir=out, coordinator=FREE_PORTS), zygote=zygote)
    assert not psutil.pid_exists(zygote.pid) and processes_of(out) == []


def test_only_a_run_of_local_node_processes_starts_a_zygote_early(tmp_path: Path) -> None:
    out = tmp_path / "run"
    parser = build_parser(tools=False)
    for flags in (["--backend", "inprocess"], ["--seeds", "2"]):
        assert early_zygote(parser.parse_args(["run", "--out", str(out), *flags]), out, True) is None
    assert early_zygote(parser.parse_args(["coordinator", "--out", str(out)]), out, False) is None
    zygote = early_zygote(parser.parse_args(["run", "--out", str(out)]), out, True)
    try:
        assert zygote is not None and processes_of(out) == [psutil.Process(zygote.pid)]
    finally:
        zygote.close(terminate=True)
    assert processes_of(out) == [] and not out.exists()


def test_the_in_process_backend_starts_no_zygote(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def started(_coord: object, _backend: object) -> None:
        seen.extend(p.cmdline() for p in psutil.Process().children(recursive=True))

    launch = LaunchOptions(out_dir=tmp_path / "run", progress=False,
                           coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0, in_process=True))
    summary = run_testbed(RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=1000), launch,
                          on_started=started)
    assert summary["phase"] == "finished"
    assert not any("node.zygote" in " ".join(cmd) for cmd in seen), seen
    assert not (tmp_path / "run" / "logs").exists()


def test_the_zygote_log_keeps_what_it_wrote_before_it_had_one(tmp_path: Path) -> None:
    zygote = start_run_zygote(tmp_path / "run")
    try:
        zygote.wait_ready()
        zygote.log_to(tmp_path / "run" / "logs" / "zygote.log")
        with pytest.raises(ZygoteError, match="unknown entry point"):
            zygote.spawn("x", [], main="no-such-entry")
    finally:
        zygote.close()
    text = (tmp_path / "run" / "logs" / "zygote.log").read_text()
    assert "ready: " in text  # written while its stderr was still the temporary file


def test_a_killed_launcher_takes_the_loading_zygote_with_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "coordinator.ui.cli", "run", "--out", str(out), *TINY,
                             "--epochs", "100000"], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    for line in proc.stderr:
        if "setting up" in line:  # the zygote was started before this line
            break
    zygotes = [p for p in psutil.Process(proc.pid).children() if "node.zygote" in " ".join(p.cmdline())]
    assert len(zygotes) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(zygotes, timeout=3.0)
    assert alive == [], [p.cmdline() for p in alive]
    for p in processes_of(out):  # any node it had forked by then dies with it (PDEATHSIG)
        p.wait(timeout=3.0)


def test_the_reference_forked_by_the_zygote_trains_what_python_m_trains(tmp_path: Path) -> None:
    setup = build_setup(RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=1000))
    zygote = start_run_zygote(tmp_path / "run")
    try:
        forked = Reference(setup, zygote=zygote)
        assert forked.pid not in [p.pid for p in psutil.Process().children()]  # the zygote's child
        plain = Reference(setup)
        a, b = forked.collect(timeout_s=120), plain.collect(timeout_s=120)
    finally:
        zygote.close()
    assert a.status == b.status == TRAINED
    assert a.test_accuracy == b.test_accuracy is not None


def test_the_reference_of_a_run_with_node_processes_is_trained(tmp_path: Path) -> None:
    launch = LaunchOptions(out_dir=tmp_path / "run", progress=False, coordinator=FREE_PORTS)
    summary = run_testbed(RunArgs(dataset="GunPoint", nodes=2, epochs=1, num_features=1000), launch)
    assert summary["reference"] == TRAINED and summary["centralized_test_accuracy"] is not None
    assert processes_of(tmp_path / "run") == []


WARM_AIR_SCRIPT = """
import sys
from pathlib import Path
from coordinator.service.air_warmup import warm_air
from coordinator.service.launch import LaunchOptions, run_testbed
from coordinator.service.run_setup import RunArgs
from coordinator.service.server import CoordinatorOptions
from protocol.air.radio.mixer import mixer_batch_kernel

seen = {}

def started(coord, _backend):
    warm_air(coord.engine.air)
    seen["after warm-up"] = set(mixer_batch_kernel.overloads)

launch = LaunchOptions(out_dir=Path(sys.argv[1]), progress=False, reference=False,
                       coordinator=CoordinatorOptions(node_port=0, feed_port=0, control_port=0, in_process=True))
run_testbed(RunArgs(dataset="GunPoint", nodes=3, epochs=1, num_features=1000), launch, on_started=started)
print(len(seen["after warm-up"]), set(mixer_batch_kernel.overloads) == seen["after warm-up"])
"""


def test_the_air_warm_up_loads_the_kernel_version_the_run_uses(tmp_path: Path) -> None:
    # In a fresh interpreter: the run's own rounds find the version the warm-up loaded (no
    # other one is compiled or loaded for them), so the warm-up takes that work off the run.
    done = subprocess.run([sys.executable, "-c", WARM_AIR_SCRIPT, str(tmp_path / "run")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True"]
