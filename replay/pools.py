"""Device time per accelerator pool: why devices idle while jobs wait is a question of *which* devices.

A pool is one accelerator type of the fleet (all clusters together): `T4`, `T4:1/2`, `G2`...
`PoolLedger` is the simulated executor plus, for every epoch (or step of one, between backfill plans;
`by_epoch` folds the steps into their epochs) it runs, the device-seconds the jobs on each type held (busy or pausing: `SimEpochResult.held_device_s` summed by the type they ran on). A
pool's share for an epoch is that over its devices (down or not) times the epoch's length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from datasets.sharing import slice_share
from executor.sim import SimEpochResult, SimExecutor
from models import Fleet

POOL_COLUMNS = ("t_s", "day", "accelerator", "devices", "held_device_s", "capacity_device_s", "held_share")


class PoolLedger(SimExecutor):
    """The simulated executor, recording device-seconds held per accelerator type per epoch."""

    def __init__(self, work: Mapping[str, float] | None = None):
        super().__init__(work)
        self.held_by_type: dict[float, dict[str, float]] = {}    # epoch start -> type -> device-seconds held

    def run_epoch(self, now_s: float, epoch_s: float) -> SimEpochResult:
        on = {j: p.accelerator for j, p in self.placements().items()}
        res = super().run_epoch(now_s, epoch_s)
        by: dict[str, float] = {}
        for jid, held in res.held_device_s.items():
            by[on[jid]] = by.get(on[jid], 0.0) + held
        self.held_by_type[now_s] = by
        return res


def pool_devices(fleet: Fleet) -> dict[str, int]:
    """Devices per accelerator type, sorted by type."""
    out: dict[str, int] = {}
    for c in fleet.clusters:
        for g in c.node_groups:
            out[g.accelerator] = out.get(g.accelerator, 0) + g.count * g.devices
    return dict(sorted(out.items()))


def by_epoch(records: Sequence, held_by_type: Mapping[float, Mapping[str, float]]) -> dict[float, dict[str, float]]:
    """The ledger's steps folded into the epochs that hold them: with backfill plans between epochs the
    loop runs an epoch in several steps, each recorded at its own start (epoch start -> type -> held)."""
    starts = sorted(held_by_type)
    out: dict[float, dict[str, float]] = {}
    i = 0
    for r in sorted(records, key=lambda r: r.t_s):
        end = r.t_s + r.dt_s
        acc: dict[str, float] = {}
        while i < len(starts) and starts[i] < end:
            if starts[i] >= r.t_s:
                for k, v in held_by_type[starts[i]].items():
                    acc[k] = acc.get(k, 0.0) + v
            i += 1
        out[r.t_s] = acc
    return out


def pool_rows(records: Sequence, held_by_type: Mapping[float, Mapping[str, float]],
              devices: Mapping[str, int]) -> list[list]:
    """One row per (epoch, type) in POOL_COLUMNS order (epochs skipped while idle hold nothing)."""
    held_by_type = by_epoch(records, held_by_type)
    rows = []
    for r in records:
        by = held_by_type.get(r.t_s, {})
        for acc, n in devices.items():
            cap = n * r.dt_s
            held = by.get(acc, 0.0)
            rows.append([r.t_s, round(r.t_s / 86400, 5), acc, n, held, cap, round(held / cap, 6) if cap else ""])
    return rows


def held_share(records: Sequence, held_by_type: Mapping[float, Mapping[str, float]], devices: Mapping[str, int],
               t_from: float, t_until: float) -> dict[str, float | None]:
    """Each pool's held share over the epochs starting in [t_from, t_until)."""
    held_by_type = by_epoch(records, held_by_type)
    window = [r for r in records if t_from <= r.t_s < t_until]
    out: dict[str, float | None] = {}
    for acc, n in devices.items():
        cap = sum(n * r.dt_s for r in window)
        out[acc] = sum(held_by_type.get(r.t_s, {}).get(acc, 0.0) for r in window) / cap if cap else None
    return out


def held_share_gpus(records: Sequence, held_by_type: Mapping[float, Mapping[str, float]], devices: Mapping[str, int],
                    t_from: float, t_until: float) -> float | None:
    """The held share of the fleet's physical GPUs over the window: each device weighted by the share of a GPU
    it is (`datasets.sharing.slice_share`: a 1/2 slice counts half), so a carved fleet reads like a whole one."""
    held_by_type = by_epoch(records, held_by_type)
    window = [r for r in records if t_from <= r.t_s < t_until]
    w = {acc: float(slice_share(acc)) for acc in devices}
    cap = sum(n * w[acc] * r.dt_s for r in window for acc, n in devices.items())
    held = sum(h * w.get(acc, 1.0) for r in window for acc, h in held_by_type.get(r.t_s, {}).items())
    return held / cap if cap else None
