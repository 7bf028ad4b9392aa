"""What a replay's inputs must satisfy together before its first epoch: checked up front, so a mistake is
one line naming the job or the option and its value, never a KeyError mid-replay or a run without end.

The options alone are bounded by `replay.options` (epoch length, days, the epochs known before the trace is
read); here the trace is known, so the epochs of the whole window are counted, and the trace's regions are
matched against the fleet's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from datasets.attributes import JobSpec
from models import Fleet
from models.fleet_index import fleet_devices
from replay.options import MAX_EPOCHS

if TYPE_CHECKING:
    from replay.harness import ReplaySetup, Window

DAY_S = 86_400.0


class ReplayInputError(ValueError):
    """Inputs a replay cannot run on: one line naming what and the value."""


def check_replay_inputs(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window) -> None:
    """Raise ReplayInputError unless the fleet has devices, every job's data region is a region of the
    fleet, and the window (to its last arrival, plus the safety stop) is at most MAX_EPOCHS epochs."""
    if fleet_devices(fleet) == 0:
        raise ReplayInputError("fleet: it has no devices (no cluster with a node): nothing could ever run")
    regions = {r.name for r in fleet.regions}
    for s in specs:
        if s.data_region is not None and s.data_region not in regions:
            raise ReplayInputError(f"trace: job {s.id!r} has data_region {s.data_region!r}, not a region of the "
                                   f"fleet ({', '.join(sorted(regions))})")
    if not specs:
        return
    lo, _, _ = window.bounds_s(specs)
    end = window.stop_s(specs, setup.max_days)
    epochs = max(0.0, end - lo) / setup.epoch_s
    if epochs > MAX_EPOCHS:
        raise ReplayInputError(f"the window from {lo / DAY_S:g} to {end / DAY_S:g} days (max_days included) is "
                               f"{epochs:,.0f} epochs of {setup.epoch_s:g} s; at most {MAX_EPOCHS:,}: a longer "
                               "epoch, a shorter window or a smaller max_days")
