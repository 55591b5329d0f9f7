#!/bin/sh
# Image build helper: stage what an install added to a virtual environment, so that a later
# image stage can COPY just that (one small layer) instead of the whole environment.
#   venv-diff.sh snapshot VENV LIST        record VENV's site-packages and bin entries in LIST
#   venv-diff.sh stage VENV LIST DEST      copy the entries that are new since LIST to DEST,
#                                          keeping their absolute paths (DEST mirrors /)
# Copies keep modes and times (cp -a): numba's cache keys on the source files' times.
set -eu
entries() {
    site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    find "$site" "$1/bin" -mindepth 1 -maxdepth 1 | LC_ALL=C sort
}
case "${1:-}" in
    snapshot) entries "$2" >"$3" ;;
    stage)
        mkdir -p "$4"
        entries "$2" | LC_ALL=C comm -13 "$3" - | while read -r path; do
            mkdir -p "$4$(dirname "$path")"
            cp -a "$path" "$4$path"
        done ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
