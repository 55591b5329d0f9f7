"""The containerized testbed: `docker compose up` with a coordinator and 20 node containers.

Runs whenever a Docker daemon is reachable (skipped, with the reason, otherwise or when
ROCKNET_SKIP_DOCKER=1). Builds the images with docker/build-images.sh (cheap when they are
current: it reuses Docker's layer cache), then brings testbeds up under unique compose project
names on free 127.0.0.1 ports and always takes them down again (`down -v`), pass or fail.
The coordinator is watched through its published control port with `rocknet status --json`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_daemon import docker_info

from coordinator.backends.compose import ComposeBackend, compose_command, container_state, docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
BUILD_SCRIPT = REPO / "docker" / "build-images.sh"
N_NODES = 20
#: Epochs for a long run: minutes more than the test lasts here (GunPoint: 50 rounds an epoch).
#: Not more: every process holds the whole sample stream (~3.5 kB an epoch).
LONG_EPOCHS = 5_000
#: Seconds a node has to answer an exchange before it counts as silent for it (the
#: coordinator's --deadline); short, so that a killed node that is not noticed at once is
#: reported down after a few seconds.
DEADLINE_S = 5
#: Compose override: no centralized reference training (it competes for the 2 cores).
NO_REFERENCE = (
    'version: "2.4"\n'
    "services:\n"
    "  coordinator:\n"
    '    command: ["rocknet", "coordinator", "--host", "0.0.0.0", "--out", "/runs/run",'
    ' "--no-reference"]\n'
)


def _skip_reason() -> str | None:
    """Why the Docker tests cannot run here, or None when they can."""
    reason, _ = docker_info()
    if reason is None and compose_command() is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    return reason


def node_entry(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The status entry of the node registered under ``name`` (None if it never registered)."""
    return next((n for n in status.get("nodes", []) if n["name"] == name), None)


class ComposeTestbed(ComposeBackend):
    """The compose backend plus waiting on the coordinator's status."""

    last_status: dict[str, Any] = {}

    def poll_status(self) -> dict[str, Any] | None:
        status = self.status()
        if status is not None:
            self.last_status = status
        return status

    def wait_for(self, what: str, check: Callable[[dict[str, Any]], bool],
                 timeout_s: float) -> dict[str, Any]:
        """Poll the status (about twice a second) until ``check`` holds; fail after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.poll_status()
            if status is not None and check(status):
                return status
            time.sleep(0.5)
        brief = {k: self.last_status.get(k) for k in ("phase", "round", "registered")}
        nodes = [(n["name"], n["status"]) for n in self.last_status.get("nodes", [])]
        raise AssertionError(
            f"not within {timeout_s:.0f} s: {what}\nlast status: {brief} nodes {nodes}\n"
            f"coordinator log:\n{self.logs()}"
        )


@pytest.fixture(scope="module")
def images() -> None:
    """Build (or refresh from the layer cache) rocknet-node and rocknet-coordinator."""
    reason = _skip_reason()
    if reason is not None:
        print(f"\nskipping the Docker tests: {reason}", file=sys.stderr)
        pytest.skip(reason)
    log = REPO / "build" / "docker-build.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run([str(BUILD_SCRIPT)], stdout=out, stderr=subprocess.STDOUT,
                              cwd=REPO, timeout=720)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        pytest.fail(f"docker/build-images.sh failed (full log: {log}):\n{tail}")


@pytest.fixture()
def testbed_factory(images: None, tmp_path: Path) -> Iterator[Callable[..., ComposeTestbed]]:
    """Make testbeds; every one is taken down (`down -v`) at the end, whatever happened."""
    made: list[ComposeTestbed] = []

    def make(env: dict[str, str], override: str | None = None) -> ComposeTestbed:
        bed = ComposeTestbed(env=env, override=override, work_dir=tmp_path)
        made.append(bed)
        return bed

    try:
        yield make
    finally:
        for bed in made:
            bed.down()


def _all_up(status: dict[str, Any]) -> bool:
    nodes = status.get("nodes", [])
    return len(nodes) == N_NODES and all(n["status"] == "up" for n in nodes)


def test_twenty_node_containers_train_and_a_killed_node_rejoins(
    testbed_factory: Callable[..., ComposeTestbed],
) -> None:
    bed = testbed_factory({
        "ROCKNET_NODES": str(N_NODES),
        "ROCKNET_EPOCHS": str(LONG_EPOCHS),
        "ROCKNET_DEADLINE": str(DEADLINE_S),
    }, NO_REFERENCE)
    bed.up()

    status = bed.wait_for(
        f"all {N_NODES} nodes registered and up, run started",
        lambda s: s["phase"] == "running" and s["registered"] == N_NODES and _all_up(s),
        timeout_s=240,
    )
    names = sorted(n["name"] for n in status["nodes"])
    assert names == [f"node{i:02d}" for i in range(N_NODES)]
    assert all(n["id"] == int(n["name"][4:]) for n in status["nodes"]), "nodeNN must be device NN"
    first_round = status["round"]
    bed.wait_for("rounds advancing", lambda s: s["round"] > first_round, timeout_s=60)

    victim = "node07"
    victim_id = node_entry(status, victim)["id"]
    container = bed.container(victim)
    docker("kill", container)
    status = bed.wait_for(f"{victim} reported down after docker kill",
                          lambda s: node_entry(s, victim)["status"] == "down", timeout_s=90)
    down_round = status["round"]
    status = bed.wait_for(
        f"the run going on without {victim}",
        lambda s: s["phase"] == "running" and s["round"] > down_round, timeout_s=90,
    )
    others = [n for n in status["nodes"] if n["name"] != victim]
    assert all(n["status"] == "up" for n in others), others
    assert node_entry(status, victim)["status"] == "down"

    docker("start", container)
    status = bed.wait_for(f"{victim} back up after docker start",
                          lambda s: node_entry(s, victim)["status"] == "up", timeout_s=120)
    rejoined = node_entry(status, victim)
    assert rejoined["id"] == victim_id, "a restarted node must get its device id back"
    assert rejoined.get("joins", 2) >= 2
    back_round = status["round"]
    status = bed.wait_for(
        f"rounds advancing with {victim} back",
        lambda s: s["round"] > back_round and node_entry(s, victim)["status"] == "up",
        timeout_s=90,
    )
    assert status["phase"] == "running" and _all_up(status)


def test_node_over_its_memory_limit_is_oom_killed_and_reported_down(
    testbed_factory: Callable[..., ComposeTestbed],
) -> None:
    # Three devices (two do not fit the emulated 256 KiB RAM budget with default settings).
    # node02 allocates 2 GiB once it has registered (the node's ROCKNET_DEBUG_ALLOCATE_MB
    # hook): far over the compose file's node memory limit.
    override = NO_REFERENCE + (
        "  node02:\n"
        "    environment:\n"
        "      - ROCKNET_DEBUG_ALLOCATE_MB=2048\n"
    )
    bed = testbed_factory({
        "ROCKNET_NODES": "3",
        "ROCKNET_EPOCHS": str(LONG_EPOCHS),
        "ROCKNET_DEADLINE": str(DEADLINE_S),
    }, override)
    bed.up("coordinator", "node00", "node01", "node02")
    container = bed.container("node02")

    exited_at: list[float] = []

    def reported_down(s: dict[str, Any]) -> bool:
        entry = node_entry(s, "node02")
        if entry is None and not exited_at and container_state(container)["Status"] == "exited":
            exited_at.append(time.monotonic())
        if entry is None and exited_at and time.monotonic() - exited_at[0] > 20:
            raise AssertionError(
                f"node02 exited ({container_state(container)}) without ever registering: the "
                "ROCKNET_DEBUG_ALLOCATE_MB hook must allocate after the node's WELCOME"
            )
        return entry is not None and entry["status"] == "down"

    status = bed.wait_for("node02 registered, then reported down", reported_down, timeout_s=150)
    state = container_state(container)
    assert state["OOMKilled"] is True, state
    assert state["Running"] is False and state["ExitCode"] == 137, state
    assert [node_entry(status, n)["status"] for n in ("node00", "node01")] == ["up", "up"]
    assert status["phase"] == "running"
