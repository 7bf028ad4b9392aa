"""Trace and fleet arguments as the CLI and what-if scenarios spell them.

- trace: a file path with a format (philly | canonical | alibaba2023), or `synthetic[:DAYS]` (the
  seeded generator of `datasets.synthetic`, 20 jobs an hour, seeded by the replay's seed).
- fleet: a FLEET.json path (the contract's `fleet` object), or a builder: `single:NODESxDEVICES`
  (one region, one cluster), `philly:MACHINES.csv` (the Philly machine list),
  `alibaba:NODES.csv[?carve=K:SHARE,...][&scale=S]` (the Alibaba v2023 node list: SHARE of each model's
  nodes carved into 1/K GPU slices, e.g. `carve=2:0.4,4:0.1`; S in (0, 1] of each group's nodes kept,
  rounded half up; `datasets.fleets.alibaba_fleet`),
  `synthetic[:REGIONS[xNODES]]` (seeded multi-region fleet, 2 clusters a region, about NODES nodes
  of 8 devices each, default 3 regions of 16).
"""

from __future__ import annotations

import math

from datasets.attributes import AttributeRules, JobSpec, to_job_specs
from datasets.errors import LoadResult, OnBad, TraceFormatError
from datasets.fleets import (
    alibaba_fleet,
    fleet_accelerators,
    load_fleet,
    parse_carve,
    philly_fleet,
    single_cluster_fleet,
    synthetic_fleet,
)
from datasets.sharing import split_type
from datasets.synthetic import synthetic_trace
from datasets.trace import load_trace
from models import Fleet

MAX_SYNTHETIC_DAYS = 365.0
MAX_SYNTHETIC_REGIONS = 64
MAX_SYNTHETIC_NODES = 10_000


def load_specs(trace: str, fmt: str, seed: int, on_bad: OnBad = "error",
               attribute_seed: int | None = None) -> tuple[list[JobSpec], LoadResult]:
    """Job specs for a trace argument, and the loader's result (for its skip counts). `seed` seeds the
    synthetic generator and (unless `attribute_seed` is given: a replication's) the attribute rules."""
    if trace == "synthetic" or trace.startswith("synthetic:"):
        text = trace.partition(":")[2] or "2"
        try:
            days = float(text)
        except ValueError:
            days = math.nan
        if not 0 < days <= MAX_SYNTHETIC_DAYS:
            raise TraceFormatError(trace, 1, f"synthetic:DAYS: expected a number of days in (0, {MAX_SYNTHETIC_DAYS:g}], "
                                   f"got {text!r}")
        res = LoadResult(rows=synthetic_trace(days=days, seed=seed))
    else:
        res = load_trace(trace, fmt, on_bad)
    return to_job_specs(res.rows, AttributeRules(seed=seed if attribute_seed is None else attribute_seed)), res


def load_fleet_arg(text: str, seed: int = 0) -> Fleet:
    """A fleet argument (see the module docstring); an accelerator name with `/` that is not a slice type
    `MODEL:1/K` is a ValueError (the sharing rules read slices from the names, `datasets/sharing.py`), and
    so is one with `|`: a trace's `|` separates alternative GPU types (`datasets/sharing.py`), so no trace
    job could ever match such a node. The contract allows any name; only a replay, which matches trace
    types against the fleet's, refuses them."""
    fleet = _build_fleet(text, seed)
    for i, c in enumerate(fleet.clusters):
        for j, g in enumerate(c.node_groups):
            if "|" in g.accelerator:
                raise ValueError(f"fleet {text!r}: fleet.clusters[{i}].node_groups[{j}].accelerator: must not "
                                 f"contain '|' (a trace's '|' separates alternative GPU types, so no job could "
                                 f"match it), got {g.accelerator!r}")
    for acc in fleet_accelerators(fleet):
        try:
            split_type(acc)
        except ValueError as exc:
            raise ValueError(f"fleet {text!r}: {exc}") from None
    return fleet


def _digits(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes other scripts' digits and superscripts)."""
    return text.isascii() and text.isdigit()


def _build_fleet(text: str, seed: int) -> Fleet:
    kind, sep, arg = text.partition(":")
    if sep and kind == "single":
        n, x, d = arg.partition("x")
        if not x or not _digits(n) or not _digits(d) or int(n) < 1 or int(d) < 1:
            raise ValueError(f"fleet {text!r}: expected single:NODESxDEVICES, e.g. single:80x8")
        return single_cluster_fleet(int(n), int(d))
    if sep and kind == "philly":
        return philly_fleet(arg)
    if sep and kind == "alibaba":
        return _alibaba(text, arg)
    if sep and kind == "synthetic":
        r, x, n = arg.partition("x")
        if not _digits(r) or int(r) < 1 or (x and (not _digits(n) or int(n) < 1)):
            raise ValueError(f"fleet {text!r}: expected synthetic:REGIONS[xNODES], e.g. synthetic:3 or synthetic:2x4")
        if int(r) > MAX_SYNTHETIC_REGIONS or (x and int(n) > MAX_SYNTHETIC_NODES):
            raise ValueError(f"fleet {text!r}: at most {MAX_SYNTHETIC_REGIONS} regions of "
                             f"{MAX_SYNTHETIC_NODES} nodes per cluster")
        return synthetic_fleet(regions=int(r), nodes_per_cluster=int(n) if x else 16, seed=seed)
    if text == "synthetic":
        return synthetic_fleet(seed=seed)
    return load_fleet(text)


def _alibaba(text: str, arg: str) -> Fleet:
    """`alibaba:NODES.csv[?carve=...][&scale=S]` (the options after the last `?`)."""
    path, _, query = arg.rpartition("?") if "?" in arg else (arg, "", "")
    carve: list[tuple[int, float]] = []
    scale = 1.0
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if key == "carve" and eq:
            carve = parse_carve(value)
        elif key == "scale" and eq:
            try:
                scale = float(value)
            except ValueError:
                scale = -1.0
            if not 0 < scale <= 1:
                raise ValueError(f"fleet {text!r}: scale: expected a number in (0, 1], got {value!r}")
        else:
            raise ValueError(f"fleet {text!r}: unknown option {item!r}: expected carve=K:SHARE[,...] or scale=S")
    if not path:
        raise ValueError(f"fleet {text!r}: expected alibaba:NODES.csv[?carve=K:SHARE,...][&scale=S]")
    return alibaba_fleet(path, carve, scale)
