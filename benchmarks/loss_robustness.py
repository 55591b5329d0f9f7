"""Final accuracy under loss, for each missing-data policy (issue: loss robustness table).

Rows: uniform i.i.d. link loss 0, 0.1, 0.3, 0.5 (and 0.7, 0.8, where Mixer starts to lose
packets end to end) and a bursty Gilbert–Elliott setting; columns: the policies ``sum``
(paper), ``skip``, ``reuse``. Each cell is one full run of the 20-device testbed (in-process:
the same Device and Air code as the real processes, without sockets, so the table takes
minutes, not hours), plus the end-to-end packet loss ratio the devices saw.

Run: ``.venv/bin/python benchmarks/loss_robustness.py [--dataset GunPoint] [--protocol mixer] [--head auto|sgd|ridge]``
Prints a markdown table; last line ``ratio: X.XX`` = accuracy at 30% loss / lossless (sum).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from coordinator.service.run_setup import RunArgs, build_setup  # noqa: E402
from inprocess import drive  # noqa: E402

SETTINGS = [("0", 0.0, None), ("0.1", 0.1, None), ("0.3", 0.3, None), ("0.5", 0.5, None),
            ("0.7", 0.7, None), ("0.8", 0.8, None),
            ("bursty GE p=0.1 r=0.1 (50% stationary)", 0.0, (0.1, 0.1))]
POLICIES = ("sum", "skip", "reuse")


def run(dataset: str, protocol: str, nodes: int, loss: float, burst: tuple[float, float] | None,
        policy: str, head: str = "auto") -> tuple[float, float]:
    setup = build_setup(RunArgs(dataset=dataset, nodes=nodes, loss=loss, protocol=protocol,
                                missing_policy=policy, head=head))
    if burst is not None:
        setup.loss.set_gilbert_elliott(*burst)
    devices, air = drive(setup, lockstep=False)
    last = [p for p in devices[0].final_metrics()["passes"] if p["kind"] == "eval"][-1]
    rx = sum(t.rx_packets for t in air.totals)
    lost = sum(t.lost_packets for t in air.totals)
    # A test sample the device could not classify (series or logits missing) counts as wrong.
    return last["correct"] / max(1, last["total"] + last["skipped"]), lost / max(1, rx + lost)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="GunPoint")
    ap.add_argument("--protocol", default="mixer")
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--head", choices=("auto", "sgd", "ridge"), default="auto",
                    help="the head (--head of rocknet run; the ridge head ignores the policy in its Gram passes)")
    a = ap.parse_args()
    print(f"{a.dataset}, {a.nodes} devices, {a.protocol}, --head {a.head} (test accuracy at device 0; an unclassified sample counts as wrong)\n")
    print("| link loss | end-to-end packet loss | " + " | ".join(POLICIES) + " |")
    print("|---|---|" + "---|" * len(POLICIES))
    table = {}
    for label, loss, burst in SETTINGS:
        cells = []
        e2e = 0.0
        for policy in POLICIES:
            acc, e2e = run(a.dataset, a.protocol, a.nodes, loss, burst, policy, a.head)
            table[(label, policy)] = acc
            cells.append(f"{acc:.4f}")
        print(f"| {label} | {e2e:.3f} | " + " | ".join(cells) + " |", flush=True)
    print(f"ratio: {table[('0.3', 'sum')] / table[('0', 'sum')]:.2f}")


if __name__ == "__main__":
    main()
