"""The testbed as a Docker Swarm stack (deploy/swarm/stack.yml) on a one-node swarm.

Runs whenever a Docker daemon is reachable (skipped with the reason otherwise, or with
ROCKNET_SKIP_DOCKER=1). Makes this daemon a swarm (`docker swarm init --advertise-addr
127.0.0.1`) unless it is one already and leaves it again afterwards; the stack, its overlay
network and its volume are removed whatever happens. The coordinator is reached only through
the ports the stack publishes on this host, with the ordinary `rocknet` CLI.

Images: built with docker/build-images.sh under the tag $ROCKNET_TAG (default latest).
Devices: $ROCKNET_SWARM_TEST_NODES (default 20, the issue's acceptance size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_daemon import docker_info

from coordinator.backends.swarm import SingleNodeSwarm, SwarmBackend, TaskInfo, swarm_state

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "docker" / "build-images.sh"
TAG = os.environ.get("ROCKNET_TAG", "latest")
N_NODES = int(os.environ.get("ROCKNET_SWARM_TEST_NODES", "20"))
#: GunPoint: 50 training samples, so 50 training rounds an epoch (then the test set's).
#: Enough that the pause below lands well before the end on a fast host: an idle 2-core
#: host ran ~650 rounds between the status that showed round 40 and the pause (10 epochs,
#: 701 rounds, was not enough there).
EPOCHS = 40
#: The killed device: slot 3.
VICTIM = 2
#: Task states with a running container.
LIVE = ("starting", "running")


def _skip_reason() -> str | None:
    """Why the swarm test cannot run here, or None when it can."""
    reason, state = docker_info("{{.Swarm.LocalNodeState}}")
    if reason is not None:
        return reason
    if state.strip() not in ("inactive", "active"):
        return f"this daemon's swarm state is {state.strip()!r}"
    if subprocess.run(["docker", "stack", "--help"], capture_output=True).returncode != 0:
        return "this docker CLI has no `docker stack`"
    return None


@pytest.fixture(scope="module")
def images() -> None:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    log = REPO / "build" / "docker-build-swarm.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run([str(BUILD_SCRIPT), "--tag", TAG], stdout=out,
                              stderr=subprocess.STDOUT, cwd=REPO, timeout=720)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        pytest.fail(f"docker/build-images.sh failed (full log: {log}):\n{tail}")


class SwarmTestbed(SwarmBackend):
    """The swarm backend plus waiting on a condition with a deadline."""

    last_status: dict[str, Any] = {}

    def wait_for(self, what: str, check: Callable[[dict[str, Any]], bool],
                 timeout_s: float) -> dict[str, Any]:
        """Poll `rocknet status` until ``check`` holds; fail with the last status and logs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None:
                self.last_status = status
                if check(status):
                    return status
            time.sleep(0.5)
        brief = {k: self.last_status.get(k) for k in ("phase", "round", "registered")}
        nodes = [(n["name"], n["status"]) for n in self.last_status.get("nodes", [])]
        raise AssertionError(f"not within {timeout_s:.0f} s: {what}\nlast status: {brief} "
                             f"nodes {nodes}\ncoordinator log:\n{self.logs()}")

    def wait_task(self, what: str, check: Callable[[list[TaskInfo]], bool], service: str,
                  timeout_s: float) -> list[TaskInfo]:
        """Poll the tasks of ``service`` until ``check`` holds."""
        deadline = time.monotonic() + timeout_s
        tasks: list[TaskInfo] = []
        while time.monotonic() < deadline:
            tasks = self.tasks(service)
            if check(tasks):
                return tasks
            time.sleep(1)
        raise AssertionError(f"not within {timeout_s:.0f} s: {what}\ntasks: {tasks}\n"
                             f"coordinator log:\n{self.logs()}")

    def command(self, command: str) -> str:
        done = self.control(command, timeout_s=5)
        assert done.returncode == 0, f"rocknet {command}: {done.stdout}{done.stderr}"
        return done.stdout


@pytest.fixture()
def stack(images: None) -> Iterator[SwarmTestbed]:
    before = swarm_state()
    with SingleNodeSwarm():
        bed = SwarmTestbed(env={
            "ROCKNET_TAG": TAG,
            "ROCKNET_NODES": str(N_NODES),
            "ROCKNET_EPOCHS": str(EPOCHS),
            "ROCKNET_DEADLINE": "5",
            "ROCKNET_NO_REFERENCE": "1",  # the centralized reference would compete for 2 cores
            "ROCKNET_NODE_CPUS": "0.5",
        })
        try:
            yield bed
        finally:
            bed.remove()
    assert swarm_state() == before, "the test must leave the daemon's swarm state as it found it"


def node_entry(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in status["nodes"] if n["name"] == name)


def test_stack_trains_to_the_end_and_a_killed_task_rejoins(stack: SwarmTestbed) -> None:
    t0 = time.monotonic()
    stack.deploy()
    # Hold the run before its first exchange: the kill below must land mid-run on any host speed.
    stack.wait_for("the coordinator answering on the published control port",
                   lambda s: True, timeout_s=180)
    stack.command("pause")
    status = stack.wait_for(
        f"all {N_NODES} node tasks registered (held by pause)",
        lambda s: s["registered"] == N_NODES and s["phase"] == "paused"
        and all(n["status"] == "up" for n in s["nodes"]), timeout_s=300)
    t_registered = time.monotonic() - t0
    assert sorted(n["name"] for n in status["nodes"]) == [f"node{i:02d}" for i in range(N_NODES)]
    assert all(n["id"] == int(n["name"][4:]) for n in status["nodes"]), "slot S must be device S-1"

    # Train past a few optimizer steps (every node has a checkpoint), then hold again.
    stack.command("resume")
    stack.wait_for("a few batches trained", lambda s: s["round"] >= 40, timeout_s=120)
    stack.command("pause")
    # A pause takes effect after the exchange in flight, which waits up to the coordinator's
    # --deadline (30 s) for a node task slowed by its CPU cap on a loaded host: allow that.
    paused = stack.wait_for("paused mid-run", lambda s: s["phase"] == "paused", timeout_s=90)
    assert paused["round"] < EPOCHS * 50, f"training must still be going on: {paused['round']}"

    victim = stack.name(VICTIM)
    old = stack.task_of(VICTIM)
    # "starting" until its first health check (30 s) passes: the container runs either way.
    assert old is not None and old.state in LIVE and old.container_id, old
    stack.kill(VICTIM)
    stack.wait_for(f"{victim} reported down after its container was killed",
                   lambda s: node_entry(s, victim)["status"] == "down", timeout_s=60)
    tasks = stack.wait_task(
        f"Swarm replacing {victim}'s task in slot {VICTIM + 1}",
        lambda ts: any(t.slot == VICTIM + 1 and t.task_id != old.task_id and t.state in LIVE
                       and t.container_id for t in ts), stack.node_service, timeout_s=120)
    new = next(t for t in tasks if t.slot == VICTIM + 1 and t.task_id != old.task_id
               and t.state in LIVE)
    assert new.container_id != old.container_id
    back = stack.wait_for(f"{victim} rejoined", lambda s: node_entry(s, victim)["status"] == "up"
                          and node_entry(s, victim)["joins"] >= 2, timeout_s=120)
    assert node_entry(back, victim)["id"] == VICTIM, "the replacement must get its device id back"
    # The node logs to stderr; `docker logs` hands it back on stderr.
    logs = subprocess.run(["docker", "logs", new.container_id], capture_output=True, text=True,
                          timeout=30)
    log = logs.stdout + logs.stderr
    assert "resumed from checkpoint" in log, log[-2000:]

    # The monitor feed and the fault injection reach the coordinator too (published ports).
    inject = stack.command("inject loss 0")
    assert "round" in inject, inject
    # The monitor attaches before the run goes on, so it sees the next round event.
    monitor = subprocess.Popen(
        [sys.executable, "-m", "coordinator.ui.cli", "monitor", "--jsonl", "--count", "1",
         "--wait", "30", "--connect", "127.0.0.1", "--control-port", str(stack.control_port),
         "--feed-port", str(stack.feed_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        time.sleep(2)  # PUB/SUB slow joiner: nothing to await on a SUB socket's join
        stack.command("resume")
        feed_out, feed_err = monitor.communicate(timeout=60)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    assert monitor.returncode == 0 and feed_out.strip(), feed_err[-2000:]
    assert json.loads(feed_out.strip().splitlines()[-1])

    # To the end: the coordinator exits 0 (task complete) after writing the summary.
    stack.wait_task("the coordinator finishing the run",
                    lambda ts: any(t.state == "complete" and t.exit_code == 0 for t in ts),
                    stack.coordinator_service, timeout_s=300)
    summary = json.loads(stack.read_run_file("summary.json"))
    assert summary["nodes"] == N_NODES
    assert summary["phase"] == "finished" and summary["rounds"] == summary["rounds_planned"]
    assert summary["test_accuracy"] is not None and summary["test_accuracy"] > 0.5
    assert [n["status"] for n in summary["per_node"]] == ["up"] * N_NODES
    # Every node task ends with exit 0 once the run is over (the killed one: a failed task).
    exits = stack.wait_task(
        "every node task ending after the run", lambda ts: all(
            t.exit_code is not None for t in ts), stack.node_service, timeout_s=120)
    assert sorted(t.slot for t in exits if t.exit_code == 0) == list(range(1, N_NODES + 1))
    assert [t.slot for t in exits if t.exit_code != 0] == [VICTIM + 1]
    print(f"\nswarm: {N_NODES} nodes registered {t_registered:.0f} s after deploy; "
          f"whole run {time.monotonic() - t0:.0f} s", file=sys.stderr)
