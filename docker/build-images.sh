#!/usr/bin/env bash
# Build the testbed's container images without any container registry:
#   1. the base image (docker/build-base-image.sh; skipped when it exists),
#   2. a wheelhouse on the host (the project wheel and every dependency, for the base image's
#      Python and C library; skipped when it is already complete),
#   3. rocknet-node:latest and rocknet-coordinator:latest (`docker build --target ...`),
#      installed from the wheelhouse with `pip --no-index`.
# Idempotent: a second run with unchanged sources reuses everything (Docker's layer cache).
#
# Usage: docker/build-images.sh [--base-image IMAGE] [--force-base] [--no-cache] [--tag TAG]
#   --base-image IMAGE  Python base image (default rocknet-base:bookworm, built here;
#                       e.g. python:3.11-slim where a registry is reachable)
#   --force-base        rebuild the debootstrapped base image
#   --no-cache          pass --no-cache to docker build
#   --tag TAG           tag of the project images (default latest)
# Environment: PYTHON  host interpreter used to build the wheelhouse (default .venv/bin/python,
#                      else python3); it need not match the image's Python version.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE_IMAGE=rocknet-base:bookworm
FORCE_BASE=()
NO_CACHE=()
TAG=latest

while [[ $# -gt 0 ]]; do
    case "$1" in
        --base-image) BASE_IMAGE="$2"; shift ;;
        --force-base) FORCE_BASE=(--force) ;;
        --no-cache) NO_CACHE=(--no-cache) ;;
        --tag) TAG="$2"; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build-images: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[build-images] $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }

if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $REPO/.venv/bin/python ]]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
docker info >/dev/null 2>&1 || die "no Docker daemon is reachable (is it running? are you in the docker group?)"

# 1. Base image -----------------------------------------------------------------------------
T0=$(now)
if [[ $BASE_IMAGE == rocknet-base:* ]]; then
    if [[ ${#FORCE_BASE[@]} -eq 0 ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "$BASE_IMAGE already exists (--force-base rebuilds it)"
    elif [[ $(id -u) -eq 0 ]]; then
        "$REPO/docker/build-base-image.sh" --tag "$BASE_IMAGE" "${FORCE_BASE[@]}"
    else
        log "debootstrap needs root: running docker/build-base-image.sh with sudo"
        sudo "$REPO/docker/build-base-image.sh" --tag "$BASE_IMAGE" "${FORCE_BASE[@]}"
    fi
elif ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    docker pull "$BASE_IMAGE" >&2 || die "base image $BASE_IMAGE is not here and cannot be pulled"
fi
T_BASE=$(( $(now) - T0 ))

# What the wheels must fit: the image's Python version, C library and machine.
read -r PY_XY GLIBC ARCH < <(docker run --rm --network none --entrypoint python3 "$BASE_IMAGE" -c \
    'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1], platform.machine())') \
    || die "could not run python3 in $BASE_IMAGE"
[[ -n $GLIBC ]] || die "$BASE_IMAGE does not use glibc; only glibc (manylinux) images are supported"
log "base image $BASE_IMAGE: Python $PY_XY, glibc $GLIBC, $ARCH"

# 2. Wheelhouse ---------------------------------------------------------------------------
T0=$(now)
WH=$REPO/wheelhouse
mkdir -p "$WH/deps" "$WH/build" "$WH/project"

# pip does not widen manylinux_2_X platform tags by itself: list every glibc up to the image's.
GLIBC_MINOR=${GLIBC#*.}
PLATFORM_ARGS=()
for ((minor = GLIBC_MINOR; minor >= 17; minor--)); do
    PLATFORM_ARGS+=(--platform "manylinux_2_${minor}_${ARCH}")
done
PLATFORM_ARGS+=(--platform "manylinux2014_${ARCH}")
TARGET_ARGS=(--only-binary=:all: --implementation cp --python-version "$PY_XY"
             --abi "cp${PY_XY/./}" "${PLATFORM_ARGS[@]}")

# Fetch from the wheelhouse alone when it already has everything, else from the index.
download() {  # download DEST ARGS...
    local dest=$1; shift
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-index --find-links "$dest" \
        -d "$dest" "$@" >/dev/null 2>&1 && return 0
    log "downloading into ${dest#"$REPO"/}: $*"
    "$PYTHON" -m pip download -q --disable-pip-version-check -d "$dest" "$@" >&2
}

# The project wheel, built with a pinned build backend kept in wheelhouse/build (so that later
# builds work offline) and fixed zip timestamps (same sources -> same bytes -> cached layers).
BUILD_REQUIRES=$("$PYTHON" - "$REPO/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
PY
)
mapfile -t BUILD_REQUIRES <<<"$BUILD_REQUIRES"
download "$WH/build" "${BUILD_REQUIRES[@]}"
rm -f "$WH"/project/*.whl
SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 315532800) \
    "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps --no-index \
    --find-links "$WH/build" -w "$WH/project" "$REPO" >&2
PROJECT_WHEEL=$(ls "$WH"/project/*.whl)

# Requirements of the node image (the project's base dependencies) and of the coordinator
# image (the `coordinator` extra), read from the wheel's metadata.
"$PYTHON" - "$PROJECT_WHEEL" "$WH" <<'PY'
import re, sys, zipfile
from email.parser import Parser

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(name).decode())
node, coordinator = [], []
for req in meta.get_all("Requires-Dist") or []:
    spec, _, marker = req.partition(";")
    extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
    if extra is None:
        node.append(spec.strip())
    elif extra.group(1) == "coordinator":
        coordinator.append(spec.strip())
for fname, reqs in (("requirements-node.txt", node), ("requirements-coordinator.txt", coordinator)):
    with open(f"{out}/{fname}", "w") as f:
        f.write("\n".join(reqs) + "\n")
PY
download "$WH/deps" "${TARGET_ARGS[@]}" -r "$WH/requirements-node.txt" -r "$WH/requirements-coordinator.txt"
T_WHEELS=$(( $(now) - T0 ))
log "wheelhouse ready in ${T_WHEELS} s: $(ls "$WH"/deps | wc -l) wheels, $(du -sh "$WH" | cut -f1)"

# 3. Images -------------------------------------------------------------------------------
build() {  # build TARGET
    local t0; t0=$(now)
    log "docker build --target $1 -> rocknet-$1:$TAG"
    docker build "${NO_CACHE[@]}" --build-arg BASE_IMAGE="$BASE_IMAGE" --target "$1" \
        -t "rocknet-$1:$TAG" -f "$REPO/Dockerfile" "$REPO" >&2
    log "rocknet-$1:$TAG built in $(( $(now) - t0 )) s"
}
T0=$(now)
build node
build coordinator
T_IMAGES=$(( $(now) - T0 ))

for image in "$BASE_IMAGE" "rocknet-node:$TAG" "rocknet-coordinator:$TAG"; do
    docker image inspect -f '{{.Size}}' "$image" | awk -v i="$image" '{printf "[build-images] %-28s %5.0f MB\n", i, $1/1e6}' >&2
done
log "times: base ${T_BASE} s, wheelhouse ${T_WHEELS} s, images ${T_IMAGES} s"
