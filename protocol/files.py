"""Files that are never seen half-written, and a content digest for the arrays in them.

:func:`atomic_write` (and :func:`atomic_write_bytes` / :func:`atomic_write_text`) write to a
temp file in the target's directory and rename it over the target, so a crash or a kill
leaves either the old file or the new one, whole. Checkpoints (node and coordinator) and
the run's result files share it.

:func:`arrays_digest`: checkpoints refuse files whose bytes changed. (``np.load`` on a zip
reads each array with an exact length and may never reach the point where zipfile checks the
CRC, so a flipped byte could load silently without this.)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

#: Permissions of a file written by :func:`atomic_write`: what ``open()`` gives under the
#: usual umask 022 (a temp file alone would be 0600).
DEFAULT_FILE_MODE = 0o644


def atomic_write(path: Path | str, writer: Callable[[BinaryIO], None], *,
                 fsync: bool = False, mode: int = DEFAULT_FILE_MODE) -> None:
    """Replace ``path`` by what ``writer`` writes to the binary file it is given, atomically.

    ``writer`` writes to a temp file next to ``path`` (same directory, so the rename never
    crosses file systems), which then replaces ``path`` with :func:`os.replace`. If ``writer``
    (or anything before the rename) raises, ``path`` keeps its old content, the temp file is
    removed and the exception propagates.

    Without ``fsync`` the result survives a killed process (the OS keeps its written pages);
    with ``fsync`` the file is flushed to the disk before the rename and the directory after
    it, which also survives a host crash or power loss, at several milliseconds a file.
    ``mode``: permission bits of the new file. The directory must exist.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_directory(target.parent)


def atomic_write_bytes(path: Path | str, data: bytes, *, fsync: bool = False,
                       mode: int = DEFAULT_FILE_MODE) -> None:
    """:func:`atomic_write` of ``data``."""

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    atomic_write(path, write, fsync=fsync, mode=mode)


def atomic_write_text(path: Path | str, text: str, *, fsync: bool = False,
                      mode: int = DEFAULT_FILE_MODE, encoding: str = "utf-8") -> None:
    """:func:`atomic_write` of ``text`` in ``encoding`` (e.g. a JSON document)."""
    atomic_write_bytes(path, text.encode(encoding), fsync=fsync, mode=mode)


def _fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename in it) to the disk."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``arrays`` (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()
