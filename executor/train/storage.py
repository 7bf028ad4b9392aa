"""Checkpoint storage per region: `ROOT/<region>/<job>/ckpt-*`. A migrate copies the newest intact
checkpoint into the destination region's folder atomically, then drops the source copy."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path

from executor.train.atomic import copy_dir_atomic
from executor.train.checkpoint import latest_valid

# A job id or region name used as it is for a folder: letters, digits, `.`, `_`, `-`, not starting with
# `.` or `-`, at most 100 characters. Anything else (a `/` or `..` that would leave the work folder, a NUL,
# a name too long for the file system, other scripts) gets a slug and a hash (`~` never occurs in the plain
# form, so two ids never share a folder).
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", re.ASCII)


def path_part(name: str) -> str:
    """One safe path component for a job id or a region name (the contract allows any text up to 1,024
    characters; the executor's folders are named after them)."""
    if _PLAIN.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name, flags=re.ASCII).strip("._-")[:48] or "x"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{slug}~{digest}"


def job_dir(root: Path, region: str, job: str) -> Path:
    """`job`'s checkpoint folder in `region`'s storage: always under `root`, one folder per (region, job)."""
    return root / path_part(region) / path_part(job)


def transfer(root: Path, job: str, src_region: str, dst_region: str) -> tuple[int, float]:
    """Move `job`'s newest intact checkpoint from one region's storage to another's: (bytes, seconds)."""
    t0 = time.perf_counter()
    src = job_dir(root, src_region, job)
    if src_region == dst_region:
        return 0, 0.0
    path, _ = latest_valid(src)
    if path is None:
        return 0, time.perf_counter() - t0
    dst = job_dir(root, dst_region, job) / path.name
    copied = copy_dir_atomic(path, dst)
    shutil.rmtree(src, ignore_errors=True)
    return copied, time.perf_counter() - t0
