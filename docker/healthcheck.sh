#!/bin/sh
# Container healthcheck of the testbed images (installed as `rocknet-healthcheck`).
#   rocknet-healthcheck connected PORT   a TCP connection to remote PORT is established
#   rocknet-healthcheck listening PORT   something in this container listens on PORT
# A node is healthy while it holds its TCP connection to the coordinator's node port
# (ZeroMQ reconnects by itself; a connection that stays lost means the node cannot train).
# The coordinator is healthy while its control port listens. Exit status 0 = healthy.
# Plain sh + grep on /proc/net/tcp{,6} (this container's network namespace only): a check
# costs a few milliseconds, not a Python start, which counts with 21 containers on 2 cores.
set -eu
if [ $# -ne 2 ]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
port=$(printf '%04X' "$2")
# /proc/net/tcp columns: sl local_address rem_address st ...; st 01 = ESTABLISHED, 0A = LISTEN
case "$1" in
    connected) pattern="^ *[0-9]+: [0-9A-F]+:[0-9A-F]{4} [0-9A-F]+:$port 01 " ;;
    listening) pattern="^ *[0-9]+: [0-9A-F]+:$port [0-9A-F]+:[0-9A-F]{4} 0A " ;;
    *) echo "rocknet-healthcheck: unknown mode '$1' (connected or listening)" >&2; exit 2 ;;
esac
if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -Eq "$pattern"; then
    echo "$1 $2: ok"
else
    echo "$1 $2: no"
    exit 1
fi
