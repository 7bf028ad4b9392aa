"""Crash-safe file operations with no torch: a folder appears complete under its final name or not at all.

The protocol: write into a temporary folder beside the target, fsync every file and the folder, rename
it into place, fsync the parent so the rename itself is durable. A process killed at any point leaves
either the old state or the new one, plus at worst a `.tmp-*` folder that readers ignore.
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingWriter:
    """A write-only file object that checksums what passes through, so the checksum costs no second read.

    CRC-32 (zlib, several GB/s): the threat is a crash or a flipped bit, not an adversary, and a
    cryptographic hash would cost as much as the write itself."""

    def __init__(self, f, on_write=None) -> None:
        self.f = f
        self.crc = 0
        self.bytes = 0
        self.on_write = on_write   # fault injection hook: called with the running byte count
        self.error: OSError | None = None   # the file's own error (ENOSPC): torch reports only a short write

    def write(self, data) -> int:
        view = memoryview(data)
        try:
            n = self.f.write(view)
        except OSError as exc:
            self.error = exc
            raise
        self.crc = zlib.crc32(view, self.crc)
        self.bytes += len(view)
        if self.on_write is not None:
            self.on_write(self.bytes)
        return n

    def flush(self) -> None:
        self.f.flush()


def publish_dir(tmp: Path, final: Path) -> None:
    """fsync `tmp` (its files already fsynced), rename it to `final`, fsync the parent."""
    fsync_dir(tmp)
    if final.exists():
        # Re-publishing the same name (the same step saved again after a resume): swap the old one out
        # first, so a crash leaves one complete copy under some name.
        old = final.with_name(f"{TMP_PREFIX}old-{final.name}-{os.getpid()}")
        os.rename(final, old)
        os.rename(tmp, final)
        fsync_dir(final.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
        fsync_dir(final.parent)


def write_file_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def copy_dir_atomic(src: Path, dst: Path) -> int:
    """Copy folder `src` to `dst` through a temporary folder; returns the bytes copied."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{TMP_PREFIX}copy-{dst.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    total = 0
    for item in sorted(src.iterdir()):
        with open(item, "rb") as fin, open(tmp / item.name, "wb") as fout:
            shutil.copyfileobj(fin, fout, 8 << 20)
            fout.flush()
            os.fsync(fout.fileno())
            total += fout.tell()
    publish_dir(tmp, dst)
    return total


def remove_stale_tmp(root: Path) -> None:
    """Delete temporary folders left by writers that died (only call where no writer is running)."""
    if root.is_dir():
        for item in root.iterdir():
            if item.name.startswith(TMP_PREFIX):
                shutil.rmtree(item, ignore_errors=True)
