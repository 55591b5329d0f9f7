"""Time from `docker compose up` to all nodes registered, with images already built.

Brings the compose testbed up under a throwaway project name on free 127.0.0.1 ports, polls
the coordinator's control port (`rocknet status --json`) and reports:

- ``up_s``: `compose up -d` returned (containers created and started),
- ``registered_s``: every node registered (status ``registered == nodes``),
- ``first_round_s``: the first round done (status ``round > 0``),
- the image sizes (bytes as Docker reports them).

Then takes the testbed down (`down -v`). Build the images first (docker/build-images.sh).
``--no-reference`` adds a compose override that skips the coordinator's centralized
reference training (which otherwise shares the CPU with the starting nodes).

    python benchmarks/compose_up.py [--nodes 20] [--repeats 1] [--no-reference] [--json]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coordinator.backends.compose import ComposeBackend  # noqa: E402

IMAGES = ("rocknet-base:bookworm", "rocknet-node:latest", "rocknet-coordinator:latest")


def image_sizes() -> dict[str, int]:
    sizes = {}
    for image in IMAGES:
        done = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"image {image} is missing: run docker/build-images.sh first")
        sizes[image] = int(done.stdout)
    return sizes


NO_REFERENCE = """version: "2.4"
services:
  coordinator:
    command: ["rocknet", "coordinator", "--host", "0.0.0.0", "--out", "/runs/run", "--no-reference"]
"""


def one_run(nodes: int, timeout_s: float, no_reference: bool, tmp: Path) -> dict[str, float]:
    """Bring one testbed up, time the milestones, take it down."""
    bed = ComposeBackend(env={"ROCKNET_NODES": str(nodes), "ROCKNET_EPOCHS": "2000"},
                         override=NO_REFERENCE if no_reference else None, work_dir=tmp,
                         project=f"rocknet-bench-{secrets.token_hex(3)}")
    services = ["coordinator", *(bed.name(i) for i in range(nodes))]
    result: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        bed.up(*services)
        result["up_s"] = time.perf_counter() - t0
        while time.perf_counter() - t0 < timeout_s:
            s = bed.status()
            if s is not None:
                if "registered_s" not in result and s["registered"] >= nodes:
                    result["registered_s"] = time.perf_counter() - t0
                if s["round"] > 0:
                    result["first_round_s"] = time.perf_counter() - t0
                    break
            time.sleep(0.1)
        else:
            raise SystemExit(f"not all {nodes} nodes registered and training within {timeout_s} s")
    finally:
        bed.down()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=20, help="node containers (<= 20)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the coordinator's centralized reference training")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)

    sizes = image_sizes()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(args.nodes, args.timeout, args.no_reference, Path(tmp))
                for _ in range(args.repeats)]
    if args.json:
        print(json.dumps({"nodes": args.nodes, "no_reference": args.no_reference,
                          "runs": runs, "image_bytes": sizes}))
        return 0
    for image, size in sizes.items():
        print(f"{image:<28} {size / 1e6:7.0f} MB")
    for i, run in enumerate(runs):
        cells = "  ".join(f"{k} {v:6.1f}" for k, v in run.items())
        print(f"run {i + 1}: {args.nodes} nodes  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
