"""Atomic files and array digests (protocol/files.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from protocol.files import (SealedFileError, atomic_write, atomic_write_bytes, atomic_write_text,
                            read_sealed, write_sealed)


class WriterFailed(RuntimeError):
    pass


@pytest.mark.parametrize("fsync", [False, True])
def test_atomic_write_replaces_the_file_whole(tmp_path: Path, fsync: bool) -> None:
    path = tmp_path / "state.npz"
    path.write_bytes(b"old")
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    atomic_write(path, lambda fh: np.savez(fh, **arrays), fsync=fsync)
    with np.load(path) as data:
        np.testing.assert_array_equal(data["w"], arrays["w"])
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]


@pytest.mark.parametrize("fsync", [False, True])
def test_a_failing_writer_leaves_the_old_file_and_no_temp_file(tmp_path: Path, fsync: bool) -> None:
    path = tmp_path / "summary.json"
    path.write_text('{"old": true}')

    def half_then_fail(fh: BinaryIO) -> None:
        fh.write(b'{"new": ')
        raise WriterFailed("disk full, say")

    with pytest.raises(WriterFailed, match="disk full"):
        atomic_write(path, half_then_fail, fsync=fsync)
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failing_first_write_creates_nothing(tmp_path: Path) -> None:
    def fail(fh: BinaryIO) -> None:
        raise WriterFailed("nothing to write")

    with pytest.raises(WriterFailed):
        atomic_write(tmp_path / "config.json", fail)
    assert list(tmp_path.iterdir()) == []


def test_bytes_and_text_helpers_and_the_file_mode(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "b.json", json.dumps({"accuracy": 0.95}), fsync=True)
    atomic_write_bytes(tmp_path / "c.key", b"k", mode=0o600)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "b.json").read_text()) == {"accuracy": 0.95}
    # A temp file is 0600; the written file gets the mode asked for (default 0644).
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "c.key").stat().st_mode) == 0o600


def test_a_missing_directory_is_an_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        atomic_write_bytes(tmp_path / "no-such-dir" / "x", b"")


def test_a_sealed_file_gives_back_its_document_and_refuses_any_changed_byte(tmp_path: Path) -> None:
    doc = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": 3, "name": "node-03"}
    path = tmp_path / "s"
    digest = write_sealed(path, b"test-format\n", doc)
    back, again = read_sealed(path, b"test-format\n")
    assert again == digest and back["n"] == 3 and back["name"] == "node-03"
    assert np.array_equal(back["w"], doc["w"]) and back["w"].dtype == np.float32
    data = path.read_bytes()
    for at in (len(data) - 1, len(data) // 2, len(b"test-format\n") + 3):  # body and digest
        bad = bytearray(data)
        bad[at] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(SealedFileError, match="digest mismatch"):
            read_sealed(path, b"test-format\n")
    path.write_bytes(data)
    with pytest.raises(SealedFileError, match="not a other-format file"):
        read_sealed(path, b"other-format\n")
    with pytest.raises(SealedFileError, match="not readable"):
        read_sealed(tmp_path / "missing", b"test-format\n")
