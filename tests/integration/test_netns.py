"""Two hosts emulated with network namespaces: the coordinator in one, the nodes in another,
a router namespace between them that forwards only TCP to the node port (7100).

    nodes ns 10.231.2.2 --veth-- router ns (forwards only tcp dport 7100) --veth-- coord ns 10.231.1.2

The run uses CURVE (keys from `rocknet keys init`), trains to the end, and the test checks what
a firewall in front of a coordinator host must do: the node port carries the run, the control
port (7102) cannot be reached from the nodes' side (the router drops it, counted), and the
operator on the coordinator's host controls the run. Needs root and `ip netns` + iptables;
skipped with the reason otherwise. Namespaces are deleted whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
COORD_IP, NODES_IP = "10.231.1.2", "10.231.2.2"
N_NODES = 3


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install iproute2 iptables)"
    probe = f"rnprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def sh(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, env=env,
                          cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class TwoHosts:
    """The three namespaces and their links."""

    coord: str
    router: str
    nodes: str

    def exec(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def build(self) -> None:
        tag = self.coord[-6:]
        for ns in (self.coord, self.router, self.nodes):
            sh("ip", "netns", "add", ns)
            sh(*self.exec(ns), "ip", "link", "set", "lo", "up")
        # coord <-> router on 10.231.1.0/24, nodes <-> router on 10.231.2.0/24
        for side, ns, net in (("c", self.coord, "1"), ("n", self.nodes, "2")):
            host, gw = f"rn{side}h{tag}", f"rn{side}g{tag}"
            sh("ip", "link", "add", host, "type", "veth", "peer", "name", gw)
            sh("ip", "link", "set", host, "netns", ns)
            sh("ip", "link", "set", gw, "netns", self.router)
            sh(*self.exec(ns), "ip", "addr", "add", f"10.231.{net}.2/24", "dev", host)
            sh(*self.exec(ns), "ip", "link", "set", host, "up")
            sh(*self.exec(ns), "ip", "route", "add", "default", "via", f"10.231.{net}.1")
            sh(*self.exec(self.router), "ip", "addr", "add", f"10.231.{net}.1/24", "dev", gw)
            sh(*self.exec(self.router), "ip", "link", "set", gw, "up")
        r = self.exec(self.router)
        sh(*r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # The firewall: nodes -> coordinator only on TCP 7100 (and the replies).
        sh(*r, "iptables", "-P", "FORWARD", "DROP")
        sh(*r, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate",
           "ESTABLISHED,RELATED", "-j", "ACCEPT")
        sh(*r, "iptables", "-A", "FORWARD", "-s", f"{NODES_IP}/32", "-d", f"{COORD_IP}/32",
           "-p", "tcp", "--dport", "7100", "-j", "ACCEPT")
        sh(*r, "iptables", "-A", "FORWARD", "-j", "DROP")

    def counters(self) -> dict[str, int]:
        """Packets of the router's rules: ``node_port`` accepted, ``dropped``."""
        out = sh(*self.exec(self.router), "iptables", "-L", "FORWARD", "-v", "-n", "-x")
        counts = {"node_port": 0, "dropped": 0}
        for line in out.splitlines():
            fields = line.split()
            if "dpt:7100" in line:
                counts["node_port"] = int(fields[0])
            elif fields[:1] and fields[0].isdigit() and fields[2] == "DROP":
                counts["dropped"] = int(fields[0])
        return counts

    def destroy(self) -> None:
        for ns in (self.coord, self.router, self.nodes):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # veths go with it


@pytest.fixture()
def hosts() -> Iterator[TwoHosts]:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    tag = secrets.token_hex(3)
    net = TwoHosts(coord=f"rncoord{tag}", router=f"rnrouter{tag}", nodes=f"rnnodes{tag}")
    try:
        net.build()
        yield net
    finally:
        net.destroy()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "coordinator.ui.cli", *args]


def test_coordinator_and_nodes_on_two_emulated_hosts_with_curve(
    hosts: TwoHosts, tmp_path: Path, warm_numba: None,
) -> None:
    keys = tmp_path / "keys"
    names = [f"node-{k:02d}" for k in range(N_NODES)]
    sh(*_cli("keys", "init", str(keys), "--names", ",".join(names)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "ROCKNET_CURVE_DIR": str(keys)}
    out = tmp_path / "run"
    procs: list[subprocess.Popen[str]] = []

    def start(ns: str, argv: list[str], log: str,
              environ: dict[str, str] = env) -> subprocess.Popen[str]:
        p = subprocess.Popen([*hosts.exec(ns), *argv], env=environ, cwd=REPO, text=True,
                             stdout=(tmp_path / log).open("w"), stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        coordinator = start(hosts.coord, _cli(
            "coordinator", "--host", "0.0.0.0", "--nodes", str(N_NODES), "--epochs", "3",
            "--no-reference", "--quiet", "--out", str(out), "--curve-dir", str(keys)),
            "coordinator.log")
        # The operator, on the coordinator's host: holds the run until every node is in.
        deadline = time.monotonic() + 60
        while subprocess.run([*hosts.exec(hosts.coord), *_cli("pause", "--timeout", "1")],
                             env=env, cwd=REPO, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, (tmp_path / "coordinator.log").read_text()
            assert coordinator.poll() is None, (tmp_path / "coordinator.log").read_text()
        for name in names:
            start(hosts.nodes, [sys.executable, "-m", "node", "--connect",
                                f"tcp://{COORD_IP}:7100", "--name", name, "--curve-dir",
                                str(keys)], f"{name}.log")
        status_cmd = [*_cli("status", "--json", "--timeout", "2")]
        while True:
            done = subprocess.run([*hosts.exec(hosts.coord), *status_cmd], env=env, cwd=REPO,
                                  capture_output=True, text=True)
            if done.returncode == 0 and json.loads(done.stdout)["registered"] == N_NODES:
                break
            assert time.monotonic() < deadline + 60, (tmp_path / "coordinator.log").read_text()
            time.sleep(0.3)

        # From the nodes' host the control port is not routed: the operator key alone does
        # not help, the router drops the connection attempt (and counts it).
        before = hosts.counters()
        assert before["node_port"] >= N_NODES, before  # each node's connection: a routed SYN
        blocked = subprocess.run(
            [*hosts.exec(hosts.nodes), *_cli("status", "--timeout", "2", "--connect",
                                             f"tcp://{COORD_IP}:7102")],
            env=env, cwd=REPO, capture_output=True, text=True)
        assert blocked.returncode != 0
        assert hosts.counters()["dropped"] > before["dropped"]
        # A node without keys reaches the node port but is refused by CURVE: it never
        # registers (the run has exactly its three keyed nodes).
        stranger = start(hosts.nodes, [sys.executable, "-m", "node", "--connect",
                                       f"tcp://{COORD_IP}:7100", "--name", "node-09",
                                       "--idle-timeout", "5"], "stranger.log",
                         {k: v for k, v in env.items() if k != "ROCKNET_CURVE_DIR"})
        # Its connection attempt reaches the node port (a routed SYN) before the run goes on:
        # a short run could otherwise end before the stranger's interpreter has even started.
        deadline = time.monotonic() + 60
        while hosts.counters()["node_port"] <= before["node_port"]:
            assert time.monotonic() < deadline, "the stranger node never reached the node port"
            assert stranger.poll() is None, (tmp_path / "stranger.log").read_text()
            time.sleep(0.05)
        sh(*hosts.exec(hosts.coord), *_cli("resume"), env=env)
        assert coordinator.wait(timeout=180) == 0, (tmp_path / "coordinator.log").read_text()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["phase"] == "finished" and summary["nodes"] == N_NODES
        assert sorted(n["name"] for n in summary["per_node"]) == names
        assert all(n["status"] == "up" for n in summary["per_node"])
        assert stranger.wait(timeout=30) != 0, (tmp_path / "stranger.log").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
