#!/usr/bin/env bash
# Make CURVE keys for a Kubernetes run and print the three Secrets the `curve` overlay mounts:
#   deploy/k8s/curve-secrets.sh KEY_DIR [N_NODES] | kubectl apply -f -
# Keys for node-0 .. node-(N-1) (default 20: the StatefulSet's replicas) are created in KEY_DIR
# with `rocknet keys init` unless it holds them already. Operators keep KEY_DIR's
# coordinator.key and operator.key_secret (ROCKNET_CURVE_DIR=KEY_DIR rocknet status ...).
# Needs `rocknet` (or ROCKNET=path) and `kubectl` (no cluster: --dry-run=client).
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n '2,8p' "$0" >&2; exit 2; }
DIR=$1
N=${2:-20}
ROCKNET=${ROCKNET:-rocknet}
NS=${ROCKNET_K8S_NAMESPACE:-rocknet}
names=$(seq -f 'node-%g' -s, 0 $((N - 1)))
if [[ ! -e $DIR/coordinator.key_secret ]]; then
    "$ROCKNET" keys init "$DIR" --names "$names" >&2
fi
publics=() secrets=()
for ((k = 0; k < N; k++)); do
    [[ -e $DIR/nodes/node-$k.key_secret ]] || { echo "no key for node-$k in $DIR/nodes (rocknet keys add $DIR node-$k)" >&2; exit 1; }
    publics+=(--from-file="$DIR/nodes/node-$k.key")
    secrets+=(--from-file="$DIR/nodes/node-$k.key_secret")
done
secret() { kubectl create secret generic "$1" -n "$NS" --dry-run=client -o yaml "${@:2}"; echo ---; }
secret rocknet-curve-coordinator --from-file="$DIR/coordinator.key" \
    --from-file="$DIR/coordinator.key_secret" --from-file="$DIR/operator.key"
secret rocknet-curve-node-keys "${publics[@]}"
secret rocknet-curve-node-secrets "${secrets[@]}"
