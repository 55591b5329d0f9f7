"""Files that are never seen half-written, and a content digest for the arrays in them.

:func:`atomic_write` (and :func:`atomic_write_bytes` / :func:`atomic_write_text`) write to a
temp file in the target's directory and rename it over the target, so a crash or a kill
leaves either the old file or the new one, whole. Checkpoints (node and coordinator) and
the run's result files share it.

:func:`write_sealed` / :func:`read_sealed`: a *sealed* file, what both checkpoints are: a
magic line naming the format, the hex sha256 of the body and a newline, then the body, one
msgpack document (numpy arrays as the wire codec's array extension). One ``pack`` and one
write: an ``.npz`` of the same arrays cost 2–15 ms in zip headers and a separate digest
pass. A flipped byte fails the digest; a file of another format fails the magic line.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from protocol.wire import codec

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


class SealedFileError(ValueError):
    """A sealed file that cannot be used: unreadable, of another format, or changed."""


_DIGEST_HEX = 64


def write_sealed(path: Path | str, magic: bytes, document: Any, *, fsync: bool = False,
                 mode: int = DEFAULT_FILE_MODE) -> str:
    """Write ``document`` (msgpack-able; arrays allowed) sealed under ``magic`` (one line,
    ending in a newline) atomically; returns the body's hex sha256."""
    if not magic.endswith(b"\n") or b"\n" in magic[:-1]:
        raise ValueError("magic must be one line ending in a newline")
    body = codec.pack(document)
    digest = hashlib.sha256(body).hexdigest()
    atomic_write_bytes(path, magic + digest.encode() + b"\n" + body, fsync=fsync, mode=mode)
    return digest


def read_sealed(path: Path | str, magic: bytes) -> tuple[Any, str]:
    """``(document, digest)`` of a file :func:`write_sealed` wrote; :class:`SealedFileError`
    (saying why) if it is unreadable, not of ``magic``'s format, or not what was written."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SealedFileError(f"not readable ({exc})") from exc
    head = len(magic) + _DIGEST_HEX + 1
    if not data.startswith(magic) or len(data) < head:
        raise SealedFileError(f"not a {magic.decode(errors='replace').strip()} file")
    body = data[head:]
    digest = hashlib.sha256(body).hexdigest()
    if digest.encode() != data[len(magic):head - 1]:
        raise SealedFileError("corrupt (content digest mismatch)")
    try:
        return codec.unpack(body, len(body)), digest
    except codec.ProtocolError as exc:  # a digest that matches a body we never wrote
        raise SealedFileError(f"damaged ({exc})") from exc
