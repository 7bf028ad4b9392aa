"""Checkpoint storage per region: `ROOT/<region>/<job>/ckpt-*`. A migrate copies the newest intact
checkpoint into the destination region's folder atomically, then drops the source copy."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from executor.train.atomic import copy_dir_atomic
from executor.train.checkpoint import latest_valid


def job_dir(root: Path, region: str, job: str) -> Path:
    return root / region / job


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
