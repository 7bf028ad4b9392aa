"""Where what-if replays run: a `RunSpec` is one replication of one scenario (or capacity-search candidate),
`run_one` turns it into its summary, and a runner maps a list of specs to their summaries in order.

The runner is the seam: `local_runner(workers)` uses spawned worker processes on this machine (in-process
for one worker); another runner (Ray) only has to map `run_one` over the specs. Every spec is an
independent, deterministic replay, so the results do not depend on the runner or on `workers`.

A failure in a worker comes back as a `RunError`: one picklable line naming the scenario, the replication
and where it happened (the trace's file and line for a `TraceFormatError`, else the source file and line
that raised), never a `BrokenProcessPool`.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from datasets.edits import edit_fleet, scale_demand
from datasets.errors import OnBad, TraceFormatError
from replay.inputs import load_fleet_arg, load_specs
from replay.outages import outage_schedule, parse_outage
from replay.reach import outage_reach
from replay.replications import attribute_seed, jitter_arrivals, jitter_outages
from replay.report import Plotter, Reporter, replay_and_report
from replay.scenarios import CapacitySearch, Scenario

# Fresh worker processes (not forks): a fork of a process that has run the solver's threads is not safe.
_SPAWN = multiprocessing.get_context("spawn")


class RunError(RuntimeError):
    """A replay that failed in a worker: one line with the scenario, the replication, the file and the line."""


@dataclass(frozen=True)
class RunSpec:
    """One replay: `scenario` plus `extra_nodes` of `search`'s node type, replication `replication`."""

    scenario: Scenario
    replication: int = 0
    extra_nodes: int = 0
    search: CapacitySearch | None = None
    out_dir: str | None = None
    plotter: Plotter | None = None
    on_bad: OnBad = "error"
    label: str | None = None
    reporter: Reporter | None = None        # replication 0's report page (with its pictures)

    @property
    def name(self) -> str:
        return self.label or self.scenario.name


Runner = Callable[[Sequence[RunSpec]], list[dict]]


def run_one(spec: RunSpec) -> dict:
    """One replication's summary (with `scenario`, `devices`, `added_nodes`, `replication`); RunError on failure."""
    try:
        return _run(spec)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one picklable line naming where it happened
        raise RunError(describe_failure(spec, exc)) from None


def describe_failure(spec: RunSpec, exc: BaseException) -> str:
    """`SCENARIO replication R: FILE line N: message` for a trace error, `...: FILE:LINE: Type: message` else."""
    who = f"{spec.name} replication {spec.replication}"
    if isinstance(exc, TraceFormatError):
        return f"{who}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{who}: {where}{type(exc).__name__}: {exc}"


def _run(spec: RunSpec) -> dict:
    sc, r = spec.scenario, spec.replication
    add = list(sc.add_nodes)
    if spec.extra_nodes and spec.search is not None:
        add.append(spec.search.nodes(spec.extra_nodes))
    fleet = edit_fleet(load_fleet_arg(sc.fleet, sc.seed), add, sc.remove_nodes)
    specs, _ = load_specs(sc.trace, sc.format, sc.seed, spec.on_bad, attribute_seed=attribute_seed(sc.seed, r))
    specs = jitter_arrivals(scale_demand(specs, sc.demand_scale, sc.seed), sc.epoch_s, sc.seed, r)
    outages = jitter_outages([parse_outage(o) for o in sc.outages], sc.seed, r)
    # The scenario's own rules judge every run: its sla_targets (the per-job SLA ratio), never the search's.
    setup = sc.setup(outages=outage_schedule(fleet, outages) if outages else None)
    summary = replay_and_report(specs, fleet, setup, sc.window(), spec.out_dir,
                                plotter=spec.plotter if r == 0 else None, label=spec.name,
                                reporter=spec.reporter if r == 0 else None)
    summary["scenario"] = spec.name
    summary["devices"] = sum(g.count * g.devices for c in fleet.clusters for g in c.node_groups)
    summary["added_nodes"] = spec.extra_nodes
    if r:
        summary["replication"] = r
    if outages:
        summary["outage_reach"] = outage_reach(fleet, outages, specs)
    return summary


def local_runner(workers: int) -> Runner:
    """Run specs on up to `workers` spawned processes (in this process for one worker or one spec)."""
    def run(specs: Sequence[RunSpec]) -> list[dict]:
        if workers <= 1 or len(specs) <= 1:
            return [run_one(s) for s in specs]
        with ProcessPoolExecutor(max_workers=min(workers, len(specs)), mp_context=_SPAWN) as pool:
            return list(pool.map(run_one, specs))
    return run


def default_workers() -> int:
    return os.cpu_count() or 1
