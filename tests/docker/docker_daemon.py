"""Whether this machine can run the Docker tests: one check shared by compose and swarm."""

from __future__ import annotations

import os
import shutil
import subprocess


def docker_info(fmt: str | None = None) -> tuple[str | None, str]:
    """``(why the Docker tests cannot run or None, docker info's output)``; ``fmt`` is a
    ``docker info --format`` template."""
    if os.environ.get("ROCKNET_SKIP_DOCKER") == "1":
        return "ROCKNET_SKIP_DOCKER=1", ""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed", ""
    cmd = ["docker", "info"] + (["--format", fmt] if fmt else [])
    try:
        info = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s", ""
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["?"])[-1]
        return f"no Docker daemon is reachable (`docker info`: {last})", ""
    return None, info.stdout
