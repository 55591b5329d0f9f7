#!/usr/bin/env bash
# Build the base image `rocknet-base:bookworm` without any container registry:
# debootstrap a minimal Debian bookworm root filesystem (python3 + python3-venv) from the
# Debian mirror this machine's apt already uses, and `docker import` it.
#
# Usage: sudo docker/build-base-image.sh [--force] [--tag NAME:TAG]
#   --force        rebuild even when the image already exists
#   --tag NAME:TAG image name (default rocknet-base:bookworm)
# Environment:
#   ROCKNET_DEBIAN_MIRROR  use this mirror URL instead of the one read from the apt sources
#   ROCKNET_DEBIAN_KEYRING keyring that signs the mirror's Release file
#   TMPDIR                 where the temporary root filesystem is built (needs ~300 MB)
set -euo pipefail

SUITE=bookworm
TAG=rocknet-base:bookworm
FORCE=0
PACKAGES=python3,python3-venv

while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) FORCE=1 ;;
        --tag) TAG="$2"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "build-base-image: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[build-base-image] $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "no Docker daemon is reachable (is it running? are you in the docker group?)"

if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG already exists; nothing to do (use --force to rebuild)"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "debootstrap needs root: run 'sudo $0'"

if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get install -y --no-install-recommends debootstrap >&2 \
        || { apt-get update >&2 && apt-get install -y --no-install-recommends debootstrap >&2; } \
        || die "could not install debootstrap; run 'apt-get update && apt-get install -y debootstrap'"
fi

# Find a mirror that serves $SUITE in this machine's apt sources (deb822 *.sources files and
# one-line *.list files). Prints "URI<TAB>KEYRING" (KEYRING may be empty).
find_mirror() {
    python3 - "$SUITE" <<'PY'
import glob, re, sys

suite = sys.argv[1]

def deb822(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    for para in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in para.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        if suite not in fields.get("suites", "").split():
            continue
        keyring = fields.get("signed-by", "")
        keyring = keyring if keyring.startswith("/") else ""
        for uri in fields.get("uris", "").split():
            yield uri, keyring

def one_line(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        keyring = ""
        match = re.match(r"deb\s+\[([^\]]*)\]\s*(.*)", line)
        if match:
            opts, rest = match.groups()
            for opt in opts.split():
                if opt.startswith("signed-by="):
                    keyring = opt.split("=", 1)[1]
        else:
            rest = line[4:]
        words = rest.split()
        if len(words) >= 2 and words[1] == suite:
            yield words[0], keyring

found = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    found += deb822(path)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        found += one_line(path)
    except FileNotFoundError:
        pass
for uri, keyring in found:
    if uri.startswith(("http://", "https://", "file:/")):
        print(f"{uri}\t{keyring}")
        break
PY
}

MIRROR="${ROCKNET_DEBIAN_MIRROR:-}"
KEYRING="${ROCKNET_DEBIAN_KEYRING:-}"
if [[ -z $MIRROR ]]; then
    IFS=$'\t' read -r MIRROR FOUND_KEYRING < <(find_mirror || true) || true
    [[ -n $MIRROR ]] || die "no apt source for Debian '$SUITE' found in /etc/apt; set ROCKNET_DEBIAN_MIRROR=<url of a Debian mirror>"
    KEYRING="${KEYRING:-${FOUND_KEYRING:-}}"
fi
if [[ -z $KEYRING && -r /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
    KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
fi
KEYRING_ARGS=()
[[ -n $KEYRING ]] && KEYRING_ARGS=(--keyring="$KEYRING")

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/rocknet-rootfs.XXXXXX")
ROOTFS="$WORK/rootfs"

cleanup() {
    # debootstrap may leave /proc, /sys or /dev mounted inside the rootfs when interrupted:
    # unmount them first, never delete through a mount point.
    local mnt
    for mnt in $(awk -v root="$ROOTFS" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$mnt" 2>/dev/null || true
    done
    if awk -v root="$ROOTFS" 'index($2, root) == 1 {found=1} END {exit !found}' /proc/mounts; then
        log "warning: mounts remain under $ROOTFS; not deleting $WORK"
        return
    fi
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

START=$(date +%s)
log "debootstrap $SUITE (minbase + $PACKAGES) from the apt mirror into $ROOTFS"
debootstrap --variant=minbase --include="$PACKAGES" "${KEYRING_ARGS[@]}" \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (full log above)"
}

# Slim the root filesystem: package caches and lists, documentation, translations.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/*

PYTHON_VERSION=$(chroot "$ROOTFS" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
log "importing as $TAG (Debian $SUITE, Python $PYTHON_VERSION)"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.rocknet.debian-suite=$SUITE org.rocknet.python=$PYTHON_VERSION" \
    --change 'CMD ["/bin/bash"]' \
    - "$TAG" >/dev/null

log "built $TAG in $(( $(date +%s) - START )) s: $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
