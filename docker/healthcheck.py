#!/usr/bin/env python3
"""Container healthcheck for the testbed images (installed as `rocknet-healthcheck`).

Usage:
    rocknet-healthcheck connected PORT   # a TCP connection to remote PORT is established
    rocknet-healthcheck listening PORT   # something in this container listens on PORT

A node is healthy while it holds its TCP connection to the coordinator's node port (ZeroMQ
reconnects on its own, so a lost connection that stays lost means the node cannot train);
the coordinator is healthy while its control port listens. Exit status 0 = healthy.
Only the container's own network namespace is inspected (/proc/net/tcp and tcp6).
"""

from __future__ import annotations

import sys

_ESTABLISHED = "01"
_LISTEN = "0A"


def _sockets() -> list[tuple[int, int, str]]:
    """Return (local_port, remote_port, state) of every TCP socket in this namespace."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            found.append((int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state))
    return found


def healthy(mode: str, port: int) -> bool:
    """True when a socket matches `mode` ("connected" or "listening") on `port`."""
    if mode == "connected":
        return any(r == port and s == _ESTABLISHED for _, r, s in _sockets())
    if mode == "listening":
        return any(lp == port and s == _LISTEN for lp, _, s in _sockets())
    raise ValueError(f"unknown mode {mode!r}: use 'connected' or 'listening'")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    ok = healthy(argv[0], int(argv[1]))
    print(f"{argv[0]} {argv[1]}: {'ok' if ok else 'no'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
