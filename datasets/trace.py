"""Read a trace file of any supported format into canonical rows (`datasets.rows.TraceJob`).

The dispatcher only: each format's loader lives in its own module and imports the row type from
`datasets.rows`, so nothing imports this module back.
"""

from __future__ import annotations

from datasets.alibaba import load_alibaba2023
from datasets.canonical import load_canonical
from datasets.errors import LoadResult, OnBad
from datasets.philly import load_philly
from datasets.rows import TraceJob

FORMATS = ("philly", "canonical", "alibaba2023")


def load_trace(path: str, fmt: str, on_bad: OnBad = "error") -> LoadResult[TraceJob]:
    """Read a trace file of format `fmt` (philly | canonical | alibaba2023) into canonical rows."""
    if fmt == "philly":
        return load_philly(path, on_bad)
    if fmt == "canonical":
        return load_canonical(path, on_bad)
    if fmt == "alibaba2023":
        return load_alibaba2023(path, on_bad)
    raise ValueError(f"unknown trace format {fmt!r}: expected one of {', '.join(FORMATS)}")
