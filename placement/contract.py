"""The contract's arithmetic (placement-v1.md), written once: every stage, baseline and executor calls it.

Each formula has a scalar form (one job, one placement) and, where the engine needs it, a numpy form
over many options at once that performs the same operations in the same order, so the two agree
to the last bit. Nothing here knows a solver; the fleet's lookups come from `models.fleet_index`.

    rate      = replicas * devices_per_replica * speed[accelerator] * locality
    locality  = 1 - remote_data_penalty  if data_region is set and differs from the region, else 1
    pause     = preempt:  O + ckpt/storage[src]
                start:    O                                   (no checkpoint region)
                          O + X(src, dst) + ckpt/storage[dst] (checkpoint in `src`)
                resize, move, migrate:
                          O + ckpt/storage[src] + X(src, dst) + ckpt/storage[dst]
                X(a, b)   = 0 if a == b, else ckpt / link_gbps(a, b) (no link: cannot move)
    charged   = min(pause, epoch_s)       disruption = value * charged / epoch_s
    n_min     = ceil(replicas / (dmax // devices_per_replica))   (0 when no replica fits a node)
    spread    = spread_penalty * weight * devices_per_replica * speed * (nodes used - n_min)
"""

from __future__ import annotations

import math

import numpy as np

from models.fleet_index import FleetIndex
from models.request import Placement

Kind = str   # start | preempt | resize | move | migrate
Num = float | np.ndarray   # one value, or one per option


def action_kind(current: Placement | None, cluster: str | None = None, accelerator: str | None = None,
                nodes: dict[str, int] | None = None) -> Kind | None:
    """The contract's kind for going from `current` to (cluster, accelerator, nodes) (`nodes` None:
    not placed); None when nothing changes."""
    if nodes is None:
        return None if current is None else "preempt"
    if current is None:
        return "start"
    if current.cluster != cluster or current.accelerator != accelerator:
        return "migrate"
    if current.nodes == nodes:
        return None
    return "resize" if current.replicas != sum(nodes.values()) else "move"


def locality(data_region: str | None, region: str, remote_penalty: float) -> float:
    """The data-locality factor of running in `region`."""
    return 1.0 - remote_penalty if data_region is not None and data_region != region else 1.0


def locality_array(data_region: np.ndarray, region: np.ndarray, remote_penalty: float) -> np.ndarray:
    """`locality` over region indices; a data region < 0 means none."""
    return np.where((data_region >= 0) & (data_region != region), 1.0 - remote_penalty, 1.0)


def rate(replicas: int, devices_per_replica: int, speed: float, loc: float) -> float:
    """Work per second (device-seconds at speed 1) of a placed job."""
    return replicas * devices_per_replica * speed * loc


def replica_value(weight: Num, devices_per_replica: Num, speed: Num, loc: Num) -> Num:
    """The objective's value per second of one replica: weight * the rate of one replica."""
    return weight * devices_per_replica * speed * loc


def transfer_s(index: FleetIndex, checkpoint_gb: float, src: str, dst: str) -> float | None:
    """X(src, dst): seconds to move a checkpoint between regions; None when no link joins them."""
    if src == dst:
        return 0.0
    gbps = index.links.get((src, dst))
    return None if gbps is None else checkpoint_gb / gbps


def pause_s(index: FleetIndex, overhead_s: float, kind: Kind, checkpoint_gb: float, src: str | None,
            dst: str | None) -> float | None:
    """Seconds an action pauses its job. `src` is the region of the current placement (resize,
    move, migrate, preempt) or of the checkpoint (start; None when there is none); `dst` the new
    placement's region. None when the checkpoint cannot reach `dst` (no link)."""
    if kind == "preempt":
        return overhead_s + checkpoint_gb / index.storage[src]
    if src is None:
        return overhead_s
    x = transfer_s(index, checkpoint_gb, src, dst)
    if x is None:
        return None
    if kind == "start":
        return overhead_s + x + checkpoint_gb / index.storage[dst]
    return overhead_s + checkpoint_gb / index.storage[src] + x + checkpoint_gb / index.storage[dst]


def pause_array(running: np.ndarray, has_src: np.ndarray, same: np.ndarray, overhead_s: float,
                checkpoint_gb: np.ndarray, src_storage: np.ndarray, dst_storage: np.ndarray,
                link_gbps: np.ndarray) -> np.ndarray:
    """`pause_s` of many changes at once: running jobs pay resize/move/migrate, others a start
    (from their checkpoint's region where `has_src`). `same`: source and destination regions are
    one; `link_gbps` > 0 where a link joins them (callers drop options without one)."""
    xfer = np.where(same | ~has_src, 0.0, checkpoint_gb / np.where(link_gbps > 0, link_gbps, 1.0))
    s_dst = checkpoint_gb / dst_storage
    s_src = checkpoint_gb / src_storage
    return np.where(running, overhead_s + s_src + xfer + s_dst,
                    np.where(has_src, overhead_s + xfer + s_dst, overhead_s))


def charged_s(pause: float, epoch_s: float) -> float:
    """The part of a pause an epoch charges: a pause longer than the epoch costs the epoch."""
    return min(pause, epoch_s)


def disruption(value: float, pause: float, epoch_s: float) -> float:
    """The value a pause costs: the share of the epoch spent paused."""
    return value * charged_s(pause, epoch_s) / epoch_s


def kept_share_array(pause: np.ndarray, epoch_s: float) -> np.ndarray:
    """Per option, the share of the epoch left to work after its pause (1 - disruption / value)."""
    return 1.0 - np.minimum(pause, epoch_s) / epoch_s


def fewest_nodes(replicas: int, dmax: int, devices_per_replica: int) -> int:
    """n_min of the spread term: the fewest nodes that hold `replicas` when each is the pool's
    largest (`dmax` devices); 0 when no replica fits on a node."""
    per = dmax // devices_per_replica
    return math.ceil(replicas / per) if per > 0 else 0


def spread(spread_penalty: float, weight: float, devices_per_replica: int, speed: float, nodes_used: int,
           n_min: int) -> float:
    """The spread term of one placed job (0 when n_min is 0)."""
    if n_min <= 0:
        return 0.0
    return spread_penalty * weight * devices_per_replica * speed * (nodes_used - n_min)
