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

import csv
import io
import math
import os
import re
import stat
from dataclasses import dataclass

from datasets.errors import TraceFormatError
from datasets.sharing import need_of

MAX_TRACE_BYTES = 1024 * 1024 * 1024       # a trace file is read whole; the largest public ones are ~100 MB
MAX_GPUS = 2**20                            # the contract's limit on a job's replicas and devices per replica
MAX_TRACE_S = 1e10                          # submit times and durations (about 317 years)
MAX_CHECKPOINT_GB = 1e9                     # the contract's limit
MAX_TEXT = 1024                             # ids and tenants: the contract's limit on names


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

    def __post_init__(self) -> None:
        """Values past what the contract carries are refused here, naming the column (the loaders turn
        the ValueError into `FILE line N: column: why`)."""
        for name in ("num_gpus", "min_gpus", "max_gpus"):
            v = getattr(self, name)
            if v is not None and v > MAX_GPUS:
                raise ValueError(f"{name}: at most {MAX_GPUS}, got {v}")
        for name in ("submit_time_s", "duration_s"):
            if getattr(self, name) > MAX_TRACE_S:
                raise ValueError(f"{name}: at most {MAX_TRACE_S:g} s, got {getattr(self, name)}")
        if self.checkpoint_gb is not None and self.checkpoint_gb > MAX_CHECKPOINT_GB:
            raise ValueError(f"checkpoint_gb: at most {MAX_CHECKPOINT_GB:g}, got {self.checkpoint_gb}")
        for name in ("job_id", "tenant", "gpu_type", "data_region"):
            v = getattr(self, name)
            if v is not None and len(v) > MAX_TEXT:
                raise ValueError(f"{name}: at most {MAX_TEXT} characters, got {len(v)}")
        lo, hi = self.min_gpus, self.max_gpus
        if (lo is not None and self.num_gpus < lo) or (hi is not None and self.num_gpus > hi):
            raise ValueError(f"num_gpus: {self.num_gpus} lies outside the job's range [min_gpus, max_gpus] = "
                             f"[{'' if lo is None else lo}, {'' if hi is None else hi}]")
        if self.gpu_type is not None:       # every loader's types pass the sharing rules' parser
            try:
                need_of(self.gpu_type, self.gpu_share)
            except ValueError as exc:
                raise ValueError(f"gpu_type: {exc}") from None


def open_csv(path: str) -> io.StringIO:
    """A trace CSV's text for `csv.reader`, read whole: UTF-8, a leading byte-order mark dropped; a file
    that is not UTF-8, too large or unreadable is a TraceFormatError (or OSError) naming the line."""
    with open(path, "rb") as f:
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            data = f.read(MAX_TRACE_BYTES + 1)
        else:
            data = _read_stream(path, f)
    if len(data) > MAX_TRACE_BYTES:
        raise TraceFormatError(path, 1, f"larger than {MAX_TRACE_BYTES // 2**20} MiB (the most a trace may hold)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TraceFormatError(path, line, f"not UTF-8: byte 0x{data[exc.start]:02x}") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise TraceFormatError(path, line, "a NUL character: not a text file")
    return io.StringIO(text, newline="")


class CsvReader:
    """`csv.reader` over a trace's text, strict: malformed CSV (a quote left open, which would otherwise
    swallow every row after it into one field, a field past the csv module's size limit) is a
    TraceFormatError naming the file and line, not an internal error or silently lost rows."""

    def __init__(self, path: str, f: io.StringIO):
        self.path = path
        self._reader = csv.reader(f, strict=True)

    def __iter__(self) -> CsvReader:
        return self

    def __next__(self) -> list[str]:
        start = self._reader.line_num + 1          # the line this row starts on
        try:
            return next(self._reader)
        except csv.Error as exc:
            end = self._reader.line_num
            spans = f" (the row starting here runs on to line {end}: a quote left open?)" if end > start else ""
            raise TraceFormatError(self.path, start, f"not valid CSV: {exc}{spans}") from None

    @property
    def line_num(self) -> int:
        return self._reader.line_num


def row_width(cols: dict[str, int]) -> int:
    """The fields a row needs to reach every named column (`check_header`'s index; a header with blank or
    repeated names has more fields than names)."""
    return max(cols.values(), default=-1) + 1


# Plain ASCII decimal numbers only: Python's int() and float() also take `1_000`, other scripts' digits
# and surrounding spaces, which no trace means.
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
_NONFINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.ASCII | re.IGNORECASE)


def _read_stream(path: str, f: io.BufferedReader) -> bytes:
    """A device or a pipe read in chunks up to the cap, refused at its first NUL byte (`--trace /dev/zero`
    once read a whole GiB before being refused)."""
    data = bytearray()
    lines = 0
    while len(data) <= MAX_TRACE_BYTES:
        chunk = f.read(1 << 24)
        if not chunk:
            break
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise TraceFormatError(path, lines + chunk.count(b"\n", 0, nul) + 1, "a NUL character: not a text file")
        lines += chunk.count(b"\n")
        data += chunk
    return bytes(data)


def parse_float(text: str, name: str, *, minimum: float | None = None, strict_min: bool = False) -> float:
    """A finite number, or ValueError naming the column and the text."""
    if _NONFINITE.fullmatch(text):
        raise ValueError(f"{name}: expected a finite number, got {text!r}")
    if not _FLOAT.fullmatch(text):
        raise ValueError(f"{name}: expected a number, got {text!r}")
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {text!r}")
    if minimum is not None and (v <= minimum if strict_min else v < minimum):
        raise ValueError(f"{name}: must be {'>' if strict_min else '>='} {minimum:g}, got {text!r}")
    return v


def parse_int(text: str, name: str, *, minimum: int | None = None) -> int:
    """An integer (an integral float such as `8.0` is accepted), or ValueError naming the column."""
    if len(text) > 64:      # (int() refuses past 4,300 digits with advice about the interpreter)
        raise ValueError(f"{name}: expected an integer, got {len(text)} characters ({text[:16]!r}...)")
    if _INT.fullmatch(text):
        v = int(text)
    elif _FLOAT.fullmatch(text) and math.isfinite(float(text)) and float(text) == int(float(text)):
        v = int(float(text))
    else:
        raise ValueError(f"{name}: expected an integer, got {text!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {text!r}")
    return v


def check_header(path: str, header: list[str] | None, required: tuple[str, ...]) -> dict[str, int]:
    """Column index by name; a missing required column is an error on line 1."""
    if header is None:
        raise TraceFormatError(path, 1, "empty file: expected a header line")
    cols: dict[str, int] = {}
    for i, name in enumerate(header):
        name = name.strip()
        if name in cols and name:
            raise TraceFormatError(path, 1, f"header names column {name!r} twice (columns {cols[name] + 1} and {i + 1})")
        cols.setdefault(name, i)
    missing = [c for c in required if c not in cols]
    if missing:
        raise TraceFormatError(path, 1, f"header lacks column(s) {', '.join(missing)} (has: {', '.join(cols)})")
    return cols
