"""The Philly job trace as the Pollux/Sia artifacts ship it (`philly_jobs.csv`).

Only `submit_time_s`, `duration_s`, `num_gpus` and `tenant` are filled in that file; the other
columns are read when present (gpu_type) and otherwise ignored. Rows with `duration_s` of zero
are bad rows (a job with no work has no completion time worth measuring).
"""

from __future__ import annotations

from datasets.errors import LoadResult, OnBad, bad_row
from datasets.rows import CsvReader, TraceJob, check_header, open_csv, parse_float, parse_int, row_width

REQUIRED = ("job_id", "submit_time_s", "duration_s", "num_gpus", "tenant")


def load_philly(path: str, on_bad: OnBad = "error") -> LoadResult[TraceJob]:
    """Philly rows in file order; job ids are kept as the trace's integers, as text."""
    result: LoadResult[TraceJob] = LoadResult()
    seen: dict[str, int] = {}
    with open_csv(path) as f:
        reader = CsvReader(path, f)
        cols = check_header(path, next(reader, None), REQUIRED)
        gpu_col = cols.get("gpu_type")
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            try:
                if len(row) < row_width(cols):
                    raise ValueError(f"row: expected {row_width(cols)} columns, got {len(row)}")
                job_id = row[cols["job_id"]].strip()
                if not job_id:
                    raise ValueError("job_id: empty")
                job = TraceJob(
                    job_id=job_id,
                    submit_time_s=parse_float(row[cols["submit_time_s"]].strip(), "submit_time_s", minimum=0),
                    duration_s=parse_float(row[cols["duration_s"]].strip(), "duration_s", minimum=0,
                                           strict_min=True),
                    num_gpus=parse_int(row[cols["num_gpus"]].strip(), "num_gpus", minimum=1),
                    tenant=row[cols["tenant"]].strip() or "default",
                    gpu_type=(row[gpu_col].strip() or None) if gpu_col is not None else None,
                )
            except ValueError as exc:
                bad_row(result, on_bad, path, line, str(exc).split(":")[0], str(exc))
                continue
            if job_id in seen:
                bad_row(result, on_bad, path, line, "job_id",
                        f"job_id: duplicate {job_id!r} (first on line {seen[job_id]})")
                continue
            seen[job_id] = line
            result.rows.append(job)
    return result
