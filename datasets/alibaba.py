"""The Alibaba GPU cluster trace v2023 pod list (`cluster-trace-gpu-v2023`, `openb_pod_list_*.csv`).

Columns: `name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, qos, pod_phase,
creation_time, deletion_time, scheduled_time` (times in seconds).

How a pod becomes a canonical job:
- `job_id` = `name`; `submit_time_s` = `creation_time`; `duration_s` = `deletion_time - scheduled_time`
  (the time it held its GPUs); `tenant` = `qos` (LS, BE, Burstable, Guaranteed); tier from the
  attribute rules (the qos class is kept as the tenant so quotas can be set per class).
- Pods that were never scheduled (`scheduled_time` empty, or phase `Pending`), pods without GPUs
  (`num_gpu` 0), pods not yet deleted (`deletion_time` empty) and pods with no run time
  (`deletion_time == scheduled_time`) are skipped and counted under those reasons; they are not
  errors. Anything unreadable or impossible is a bad row (an error naming the line, or with
  `--on-bad skip` skipped and counted under its reason): a pod deleted before it was scheduled
  (`deleted_before_scheduled`), one scheduled before it was created (`scheduled_before_created`).
  The replay's `summary.json` reports every count (`trace_skipped`).
- `gpu_spec` names the allowed GPU models, several joined by `|`; empty means any model.
- A pod asking for part of one GPU (`num_gpu` 1, `gpu_milli` < 1000) is a GPU-sharing job with
  `gpu_share = gpu_milli / 1000`; where it may run (any slice at least that large, or a whole GPU of
  an allowed model) is `datasets/sharing.py`'s rule. Its nominal type is the smallest slice that
  holds it:

  | `gpu_milli` | slice type (for `gpu_spec` `T4`) | share of a GPU |
  |---|---|---|
  | 1 - 125 | `T4:1/8` | 1/8 |
  | 126 - 250 | `T4:1/4` | 1/4 |
  | 251 - 500 | `T4:1/2` | 1/2 |
  | 501 - 999 | `T4` (a whole GPU) | 1 |

  With an empty `gpu_spec` the slice type is `GPU:1/4` and so on (any model). Fleets for this trace
  declare node groups of slice types (`devices` = slices per node), e.g. `alibaba:NODES.csv?carve=...`
  (`datasets.fleets.alibaba_fleet`).
"""

from __future__ import annotations

from datasets.errors import LoadResult, OnBad, bad_row
from datasets.rows import CsvReader, TraceJob, check_header, open_csv, parse_float, parse_int, row_width

REQUIRED = ("name", "num_gpu", "gpu_milli", "gpu_spec", "qos", "pod_phase", "creation_time", "deletion_time",
            "scheduled_time")
# Kubernetes' pod phases; any other value is a bad row, not silently a pod that ran.
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
# (upper bound of gpu_milli, slice suffix); above the last bound a pod takes a whole GPU.
SLICE_TABLE: tuple[tuple[int, str], ...] = ((125, "1/8"), (250, "1/4"), (500, "1/2"))


def slice_type(gpu_spec: str, gpu_milli: int) -> str | None:
    """The accelerator type(s) a single-GPU pod asking for `gpu_milli` thousandths runs on (None: any GPU)."""
    suffix = next((s for bound, s in SLICE_TABLE if gpu_milli <= bound), None)
    specs = [s.strip() for s in gpu_spec.split("|") if s.strip()]
    if suffix is None:
        return "|".join(specs) or None
    return "|".join(f"{s}:{suffix}" for s in (specs or ["GPU"]))


def load_alibaba2023(path: str, on_bad: OnBad = "error") -> LoadResult[TraceJob]:
    """Pods with GPUs that ran, as canonical jobs; the others counted in `skipped` by reason."""
    result: LoadResult[TraceJob] = LoadResult()
    seen: dict[str, int] = {}
    with open_csv(path) as f:
        reader = CsvReader(path, f)
        cols = check_header(path, next(reader, None), REQUIRED)

        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue

            def get(name: str, row: list[str] = row) -> str:
                i = cols[name]
                return row[i].strip() if i < len(row) else ""

            try:
                if len(row) < row_width(cols):
                    raise ValueError(f"row: expected {row_width(cols)} columns, got {len(row)}")
                name = get("name")
                if not name:
                    raise ValueError("name: empty")
                num_gpu = parse_int(get("num_gpu"), "num_gpu", minimum=0)
                gpu_milli = parse_int(get("gpu_milli") or "0", "gpu_milli", minimum=0)
                if num_gpu > 0 and not 0 < gpu_milli <= 1000:
                    raise ValueError(f"gpu_milli: expected 1..1000 for a pod with GPUs, got {get('gpu_milli')!r}")
                if num_gpu > 1 and gpu_milli != 1000:
                    raise ValueError(f"gpu_milli: a pod with {num_gpu} GPUs takes whole GPUs (1000), "
                                     f"got {get('gpu_milli')!r}")
                phase = get("pod_phase")
                if phase and phase not in POD_PHASES:
                    raise ValueError(f"pod_phase: expected one of {', '.join(POD_PHASES)} (or empty), got {phase!r}")
                creation = parse_float(get("creation_time"), "creation_time", minimum=0)
                scheduled_txt, deletion_txt = get("scheduled_time"), get("deletion_time")
                scheduled = parse_float(scheduled_txt, "scheduled_time", minimum=0) if scheduled_txt else None
                deletion = parse_float(deletion_txt, "deletion_time", minimum=0) if deletion_txt else None
            except ValueError as exc:
                bad_row(result, on_bad, path, line, str(exc).split(":")[0], str(exc))
                continue
            if num_gpu == 0:
                result.skip(line, "no_gpu", f"pod {name} asks for no GPU")
                continue
            if scheduled is None or get("pod_phase") == "Pending":
                result.skip(line, "unscheduled", f"pod {name} was never scheduled")
                continue
            if deletion is None:
                result.skip(line, "not_deleted", f"pod {name} has no deletion_time")
                continue
            if deletion < scheduled:
                bad_row(result, on_bad, path, line, "deleted_before_scheduled",
                        f"deletion_time: pod {name} deleted at {deletion_txt}, before it was scheduled at "
                        f"{scheduled_txt}")
                continue
            if scheduled < creation:
                bad_row(result, on_bad, path, line, "scheduled_before_created",
                        f"scheduled_time: pod {name} scheduled at {scheduled_txt}, before it was created at "
                        f"{get('creation_time')}")
                continue
            if deletion == scheduled:
                result.skip(line, "zero_duration", f"pod {name}: deletion_time {deletion_txt} == scheduled_time "
                                                   f"{scheduled_txt}")
                continue
            if name in seen:
                bad_row(result, on_bad, path, line, "name", f"name: duplicate {name!r} (first on line {seen[name]})")
                continue
            seen[name] = line
            try:
                job = TraceJob(job_id=name, submit_time_s=creation, duration_s=deletion - scheduled, num_gpus=num_gpu,
                               tenant=get("qos") or "default", gpu_type=slice_type(get("gpu_spec"), gpu_milli),
                               gpu_share=gpu_milli / 1000 if gpu_milli < 1000 else None)
            except ValueError as exc:
                bad_row(result, on_bad, path, line, str(exc).split(":")[0], str(exc))
                continue
            result.rows.append(job)
    return result
