"""Injected failures: nodes or whole regions down from a time, until another (or for good).

Spec text (CLI `--fail`, what-if `outages`): `TARGET@START_DAY[+HOURS]` where TARGET is a node name,
`region:NAME` or `cluster:NAME`; without `+HOURS` the outage lasts to the end of the replay.
Outages take effect at the first epoch boundary at or after their start (the replay's grid). One starting
at or after the replay's hard stop (`replay.harness.Window.stop_s`: the window's end plus max_days) could
never take effect, and is refused once the trace is read: silently ignoring it would answer a question
nobody asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from models import Fleet
from models.fleet_index import fleet_index


@dataclass(frozen=True)
class Outage:
    target: str              # node name, "region:NAME" or "cluster:NAME"
    start_s: float
    end_s: float | None = None


DAY_S = 86400.0


def parse_outage(text: str, stop_s: float = math.inf) -> Outage:
    """`TARGET@START_DAY[+HOURS]` -> Outage; ValueError names the part that is wrong. `stop_s`, where the
    trace is known, is the replay's hard stop: an outage starting at or after it is refused."""
    target, sep, when = text.partition("@")
    if not sep or not target:
        raise ValueError(f"outage {text!r}: expected TARGET@START_DAY[+HOURS]")
    day, plus, hours = when.partition("+")
    try:
        start = float(day) * 86400.0
        end = start + float(hours) * 3600.0 if plus else None
    except ValueError:
        raise ValueError(f"outage {text!r}: START_DAY and HOURS must be numbers") from None
    if not math.isfinite(start) or (end is not None and not math.isfinite(end)):
        # nan passed both checks below, and the outage silently never happened
        raise ValueError(f"outage {text!r}: START_DAY and HOURS must be finite numbers")
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"outage {text!r}: start must be >= 0 and HOURS > 0")
    if start >= stop_s:
        raise ValueError(f"outage {text!r}: starts on day {start / DAY_S:g}, but the last day the replay can "
                         f"reach is day {stop_s / DAY_S:g} (the window's end plus max_days): it would never take "
                         "effect")
    return Outage(target, start, end)


def outage_nodes(fleet: Fleet, target: str) -> set[str]:
    """The nodes a target names; ValueError for one the fleet does not have."""
    kind, _, name = target.partition(":") if ":" in target else ("node", "", target)
    fx = fleet_index(fleet)
    if kind == "node":
        nodes = {name} if name in fx.index else set()
    elif kind == "region":
        nodes = {n for i, n in enumerate(fx.names) if fx.region_of[fx.cluster[i]] == name}
    else:
        nodes = {n for i, n in enumerate(fx.names) if fx.cluster[i] == name}
    if kind not in ("node", "region", "cluster"):
        raise ValueError(f"outage target {target!r}: expected a node, region:NAME or cluster:NAME")
    if not nodes:
        raise ValueError(f"outage target {target!r}: no such {kind} in the fleet")
    return nodes


def outage_schedule(fleet: Fleet, outages: Sequence[Outage]) -> Callable[[float], set[str]]:
    """`down_at(t)`: the nodes down at time t (validated against the fleet now, not mid-replay)."""
    resolved = [(o.start_s, o.end_s, frozenset(outage_nodes(fleet, o.target))) for o in outages]

    def down_at(t: float) -> set[str]:
        out: set[str] = set()
        for start, end, nodes in resolved:
            if start <= t and (end is None or t < end):
                out |= nodes
        return out

    return down_at
