"""GPU sharing, written once: what a slice type is, which jobs may run on it, and at what speed.

Every replay job template takes its allowed accelerator types and speeds from `allowed_speeds`.

**Slice types.** An accelerator type named `MODEL:1/K` is one K-th of one physical GPU of MODEL
(`GPU:1/K` where the model is unknown); a node group of it with `devices = gpus * K` is a node
whose every GPU is carved into K slices. Any other accelerator name is a whole device (its model is
its name); no other accelerator name contains `/`.

**Slices are carved in advance.** The contract places whole devices of one type per node (a MIG
profile is just another type, as Kubernetes exposes it), so a GPU is either carved into slices or
whole for the whole replay: the fleet builder chooses the carve (`alibaba:NODES.csv?carve=...`,
`datasets.fleets.alibaba_fleet`), the scheduler never re-carves.

**Which jobs run where.** A job asks for `num_gpus` devices, each either a whole GPU or a share `s`
(0 < s < 1) of one GPU (Alibaba's `gpu_milli / 1000`; from the type's name `1/K` where the trace
gives only a slice type), of the models the trace allows (any model when it names none):
- a **whole-GPU job** runs only on whole devices: the types the trace names, or every whole type
  of the fleet. It never runs on a slice;
- a **sharing job** runs on any slice `MODEL:1/K` of an allowed model with `1/K >= s`, or on a
  whole GPU of an allowed model.

**Speed and what is left free.** Speed 1.0 on every allowed type: the trace's duration is the time
the job held its share, and a larger share (a bigger slice, a whole GPU) does not make it faster.
A job holds each device it is placed on entirely, so a sharing job on a whole GPU or on a larger
slice leaves the rest of that device idle (nothing else may co-locate on it: the carve is fixed).
Work is `duration * num_gpus` device-seconds at speed 1, whatever device it ran on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

__all__ = ["ANY_MODEL", "allowed_speeds", "is_slice", "need_of", "slice_name", "slice_share", "split_type", "type_model"]

ANY_MODEL = "GPU"     # the model of a slice whose GPU model is unknown (`GPU:1/8`)
_SLICE = re.compile(r"^(?P<model>[^:/]+):1/(?P<k>[1-9][0-9]*)$")


def split_type(name: str) -> tuple[str, Fraction]:
    """(model, share of one GPU) of an accelerator type: `T4:1/4` -> (`T4`, 1/4); `H100` -> (`H100`, 1)."""
    m = _SLICE.match(name)
    if m is None:
        if "/" in name:
            raise ValueError(f"accelerator {name!r}: only slice types MODEL:1/K may contain '/'")
        return name, Fraction(1)
    return m["model"], Fraction(1, int(m["k"]))


def is_slice(name: str) -> bool:
    """Whether `name` is a slice type (`MODEL:1/K` with K > 1)."""
    return split_type(name)[1] < 1


def slice_share(name: str) -> Fraction:
    """The share of one GPU a device of type `name` is (1 for a whole device)."""
    return split_type(name)[1]


def type_model(name: str) -> str:
    """The GPU model of a type (`T4:1/2` -> `T4`)."""
    return split_type(name)[0]


def slice_name(model: str, k: int) -> str:
    """The type of one K-th of a GPU of `model` (`model` itself for K = 1)."""
    if k < 1:
        raise ValueError(f"slice: K must be >= 1, got {k}")
    return model if k == 1 else f"{model}:1/{k}"


def need_of(gpu_type: str | None, gpu_share: float | None) -> tuple[float | None, tuple[str, ...] | None]:
    """(share of one GPU per device or None for whole GPUs, allowed models or None for any) of a trace job.

    `gpu_type` is the trace's type(s) joined by `|`; slice types there make the job a sharing one (its share
    is the smallest such slice unless `gpu_share` says it exactly). A model named `GPU` means any model.
    """
    names = [t.strip() for t in (gpu_type or "").split("|") if t.strip()]
    parts = [split_type(t) for t in names]
    share = gpu_share
    if share is None and any(s < 1 for _, s in parts):
        share = float(min(s for _, s in parts))
    if share is not None and not 0 < share <= 1:
        raise ValueError(f"gpu_share: expected 0 < share <= 1, got {share!r}")
    if share is not None and share >= 1:
        share = None
    models = tuple(dict.fromkeys(m for m, _ in parts))
    if share is not None:
        return share, None if not models or ANY_MODEL in models else models
    return None, None


def allowed_speeds(gpu_type: str | None, gpu_share: float | None, fleet_types: Sequence[str]) -> dict[str, float]:
    """The contract `speed` map of a job: every type the rules above allow it, at 1.0.

    Whole-GPU jobs that name their types keep exactly those (in the trace's order, fleet or not); the
    others get the allowed types of the fleet in `fleet_types`' order. Where the fleet has none, the
    job's own nominal type (so the replay rejects it naming what it needed).
    """
    share, models = need_of(gpu_type, gpu_share)
    if share is None:
        named = [t.strip() for t in (gpu_type or "").split("|") if t.strip()]
        if named:
            return {t: 1.0 for t in named}
        whole = [t for t in fleet_types if slice_share(t) == 1]
        return {t: 1.0 for t in whole} or {ANY_MODEL: 1.0}
    out = {}
    for t in fleet_types:
        model, size = split_type(t)
        if models is not None and model not in models:
            continue
        if float(size) >= share - 1e-12:
            out[t] = 1.0
    if out:
        return out
    k = max(1, math.floor(1 / share + 1e-9))
    return {slice_name(m, k): 1.0 for m in (models or (ANY_MODEL,))}
