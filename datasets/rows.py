"""The canonical job row every trace converts to, and the field parsers the loaders share.

Canonical job CSV (a header line, then one job per line; extra columns are ignored):

| column | required | meaning |
|---|---|---|
| `job_id` | yes | unique id (any text without surrounding spaces) |
| `submit_time_s` | yes | arrival, seconds from the trace's origin, >= 0 |
| `duration_s` | yes | run time on `num_gpus` devices at speed 1, > 0 |
| `num_gpus` | yes | devices the job ran on, integer >= 1 |
| `tenant` | yes | owner (Philly: virtual cluster); empty means `default` |
| `tier` | no | premium, standard or basic; empty: the seeded hash rule |
| `gpu_type` | no | accelerator type (several joined by `\\|`); empty: any type of the fleet; a slice type `MODEL:1/K` makes a GPU-sharing job (`datasets/sharing.py`) |
| `gpu_share` | no | share of one GPU each device needs, in (0, 1] (Alibaba's `gpu_milli / 1000`); empty: from the slice type's `1/K`, else a whole GPU |
| `min_gpus`, `max_gpus` | no | elastic range in devices; empty: the Singularity rule |
| `checkpoint_gb` | no | checkpoint size; empty: `1 + 2 * num_gpus` |
| `data_region` | no | region holding the job's data; empty: none |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from datasets.errors import TraceFormatError


@dataclass(frozen=True)
class TraceJob:
    """One job as a trace records it (the canonical CSV's columns)."""

    job_id: str
    submit_time_s: float
    duration_s: float
    num_gpus: int
    tenant: str = "default"
    tier: str | None = None
    gpu_type: str | None = None
    min_gpus: int | None = None
    max_gpus: int | None = None
    checkpoint_gb: float | None = None
    data_region: str | None = None
    gpu_share: float | None = None     # share of one GPU per device (a sharing job); None: whole GPUs


def parse_float(text: str, name: str, *, minimum: float | None = None, strict_min: bool = False) -> float:
    """A finite number, or ValueError naming the column and the text."""
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {text!r}")
    if minimum is not None and (v <= minimum if strict_min else v < minimum):
        raise ValueError(f"{name}: must be {'>' if strict_min else '>='} {minimum:g}, got {text!r}")
    return v


def parse_int(text: str, name: str, *, minimum: int | None = None) -> int:
    """An integer (an integral float such as `8.0` is accepted), or ValueError naming the column."""
    try:
        v = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise ValueError(f"{name}: expected an integer, got {text!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ValueError(f"{name}: expected an integer, got {text!r}") from None
        v = int(f)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {text!r}")
    return v


def check_header(path: str, header: list[str] | None, required: tuple[str, ...]) -> dict[str, int]:
    """Column index by name; a missing required column is an error on line 1."""
    if header is None:
        raise TraceFormatError(path, 1, "empty file: expected a header line")
    cols = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in required if c not in cols]
    if missing:
        raise TraceFormatError(path, 1, f"header lacks column(s) {', '.join(missing)} (has: {', '.join(cols)})")
    return cols
