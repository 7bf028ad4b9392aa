"""Read and write the canonical job CSV (columns documented in `datasets.rows`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from datasets.errors import LoadResult, OnBad, TraceFormatError, bad_row
from datasets.files import write_atomic
from datasets.rows import CsvReader, TraceJob, check_header, open_csv, parse_float, parse_int
from datasets.sharing import need_of

REQUIRED = ("job_id", "submit_time_s", "duration_s", "num_gpus", "tenant")
OPTIONAL = ("tier", "gpu_type", "min_gpus", "max_gpus", "checkpoint_gb", "data_region", "gpu_share")
TIER_NAMES = ("premium", "standard", "basic")


def load_canonical(path: str, on_bad: OnBad = "error") -> LoadResult[TraceJob]:
    """Canonical rows; a bad row raises TraceFormatError naming its line (or is counted with on_bad='skip')."""
    result: LoadResult[TraceJob] = LoadResult()
    seen: dict[str, int] = {}
    with open_csv(path) as f:
        reader = CsvReader(path, f)
        cols = check_header(path, next(reader, None), REQUIRED)
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            try:
                job = parse_canonical_row(row, cols)
            except ValueError as exc:
                bad_row(result, on_bad, path, line, str(exc).split(":")[0], str(exc))
                continue
            if job.job_id in seen:
                bad_row(result, on_bad, path, line, "job_id",
                        f"job_id: duplicate {job.job_id!r} (first on line {seen[job.job_id]})")
                continue
            seen[job.job_id] = line
            result.rows.append(job)
    return result


def parse_canonical_row(row: list[str], cols: dict[str, int]) -> TraceJob:
    """One row as a TraceJob; ValueError names the column and the value."""

    def get(name: str) -> str:
        i = cols.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    job_id = get("job_id")
    if not job_id:
        raise ValueError("job_id: empty")
    num_gpus = parse_int(get("num_gpus"), "num_gpus", minimum=1)
    tier = get("tier") or None
    if tier is not None and tier not in TIER_NAMES:
        raise ValueError(f"tier: expected premium, standard or basic, got {tier!r}")
    min_gpus = parse_int(get("min_gpus"), "min_gpus", minimum=1) if get("min_gpus") else None
    max_gpus = parse_int(get("max_gpus"), "max_gpus", minimum=1) if get("max_gpus") else None
    if min_gpus is not None and max_gpus is not None and min_gpus > max_gpus:
        raise ValueError(f"min_gpus: {min_gpus} exceeds max_gpus {max_gpus}")
    gpu_type = get("gpu_type") or None
    share = parse_float(get("gpu_share"), "gpu_share", minimum=0, strict_min=True) if get("gpu_share") else None
    if share is not None and share > 1:
        raise ValueError(f"gpu_share: must be <= 1 (a share of one GPU), got {get('gpu_share')!r}")
    try:
        need_of(gpu_type, share)
    except ValueError as exc:
        raise ValueError(f"gpu_type: {exc}") from None
    return TraceJob(
        job_id=job_id,
        submit_time_s=parse_float(get("submit_time_s"), "submit_time_s", minimum=0),
        duration_s=parse_float(get("duration_s"), "duration_s", minimum=0, strict_min=True),
        num_gpus=num_gpus,
        tenant=get("tenant") or "default",
        tier=tier,
        gpu_type=gpu_type,
        min_gpus=min_gpus,
        max_gpus=max_gpus,
        checkpoint_gb=parse_float(get("checkpoint_gb"), "checkpoint_gb", minimum=0) if get("checkpoint_gb") else None,
        data_region=get("data_region") or None,
        gpu_share=share,
    )


def write_canonical(path: str, jobs: Iterable[TraceJob]) -> None:
    """Write rows as canonical CSV atomically (temp file, fsync, rename)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(REQUIRED + OPTIONAL)
    for j in jobs:
        w.writerow([j.job_id, _num(j.submit_time_s), _num(j.duration_s), j.num_gpus, j.tenant,
                    j.tier or "", j.gpu_type or "", _opt(j.min_gpus), _opt(j.max_gpus),
                    _opt(j.checkpoint_gb), j.data_region or "", _opt(j.gpu_share)])
    write_atomic(path, buf.getvalue())


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _opt(v: float | None) -> str:
    return "" if v is None else _num(v)


__all__ = ["OPTIONAL", "REQUIRED", "TraceFormatError", "load_canonical", "parse_canonical_row", "write_canonical"]
