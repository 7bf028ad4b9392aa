"""Where what-if replays run: a `RunSpec` is one replication of one scenario (or capacity-search candidate),
and a runner maps a list of specs to their summaries in order.

The seam is `run_specs(specs, task_runner)`: every spec becomes a `replay.runners.Task` of `replay_spec`,
which replays and returns the run's rows (`SpecResult`: a `replay.report.RunOutput` and the keys the
what-if adds to the summary) and writes nothing; the workers are handed the spec without its output
folder. This process (the driver) writes each run's folder as it finishes (`write_spec`), so a run on
another machine leaves nothing there and `--out` never needs to be shared. `local_runner(workers)`
runs the tasks on spawned processes on this machine (in-process for one worker); the Ray runner
(`replay.ray_runner.spec_runner`) runs the same tasks as Ray tasks. Every spec is an independent,
deterministic replay, so the results and the files do not depend on the runner or on `workers`.

A failure in a worker comes back as a `RunError`: one picklable line naming the scenario, the replication
and where it happened (the trace's file and line for a `TraceFormatError`, else the source file and line
that raised), never a `BrokenProcessPool`. Every spec runs; the failures are then raised together.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from datasets.edits import edit_fleet, scale_demand
from datasets.errors import OnBad, TraceFormatError
from replay.inputs import load_fleet_arg, load_specs
from replay.outages import outage_schedule, parse_outage
from replay.reach import outage_reach
from replay.replications import attribute_seed, jitter_arrivals, jitter_outages
from replay.report import Plotter, Reporter, RunOutput, check_out_dir, replay_output, write_run
from replay.runners import OnDone, Task, TaskFailed
from replay.runners import Runner as TaskRunner
from replay.runners import local_runner as local_task_runner
from replay.scenarios import CapacitySearch, Scenario


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


@dataclass
class SpecResult:
    """What a worker returns for one spec: the run as rows (`output`, whose summary is what summary.json
    holds) and the keys the what-if adds to the summary it returns (`scenario`, `devices`, ...)."""

    output: RunOutput
    extra: dict


def replay_spec(spec: RunSpec) -> SpecResult:
    """A worker's task: replay one spec and return its rows; writes nothing (RunError on failure)."""
    try:
        return _run(spec)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one picklable line naming where it happened
        raise RunError(describe_failure(spec, exc)) from None


def for_worker(spec: RunSpec) -> RunSpec:
    """The spec a worker is given: without the output folder and the writers, which stay with the driver."""
    return replace(spec, out_dir=None, plotter=None, reporter=None)


def write_spec(spec: RunSpec, res: SpecResult) -> dict:
    """In the driver: write the run's folder (`spec.out_dir`; replication 0 with its pictures and report
    page, summary.json last) and return its summary with the what-if's keys."""
    if spec.out_dir:
        first = spec.replication == 0
        write_run(res.output, spec.out_dir, spec.plotter if first else None, spec.reporter if first else None)
    return {**res.output.summary, **res.extra}


def run_one(spec: RunSpec) -> dict:
    """One replication in this process, its folder written: the summary (with `scenario`, `devices`,
    `added_nodes`, `replication`); RunError on failure."""
    if spec.out_dir:
        check_out_dir(spec.out_dir)
    return write_spec(spec, replay_spec(for_worker(spec)))


def run_specs(specs: Sequence[RunSpec], tasks: TaskRunner, on_done: OnDone | None = None) -> list[dict]:
    """The specs' summaries in order: each replayed as a task of `tasks` (a `replay.runners` runner) that
    returns its rows, each folder written here as its run finishes. Every output folder is checked before
    any run starts; every spec runs, and the failed ones are then raised together as one RunError."""
    for s in specs:
        if s.out_dir:
            check_out_dir(s.out_dir)
    summaries: list = [None] * len(specs)

    def done(i: int, task: Task, res) -> None:
        if not isinstance(res, TaskFailed):
            summaries[i] = write_spec(specs[i], res)
        if on_done is not None:
            on_done(i, task, res)

    results = tasks([Task(f"{s.name} replication {s.replication}", replay_spec, (for_worker(s),)) for s in specs],
                    done)
    bad = [r for r in results if isinstance(r, TaskFailed)]
    if bad:
        raise RunError("; ".join(_failure_line(f) for f in bad))
    return summaries


def _failure_line(f: TaskFailed) -> str:
    """A worker's RunError is its own line; anything else (a worker that died) is named by its task."""
    return f.error[len("RunError: "):] if f.error.startswith("RunError: ") else str(f)


def describe_failure(spec: RunSpec, exc: BaseException) -> str:
    """`SCENARIO replication R: FILE line N: message` for a trace error, `...: FILE:LINE: Type: message` else."""
    who = f"{spec.name} replication {spec.replication}"
    if isinstance(exc, TraceFormatError):
        return f"{who}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{who}: {where}{type(exc).__name__}: {exc}"


def _run(spec: RunSpec) -> SpecResult:
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
    out = replay_output(specs, fleet, setup, sc.window(), label=spec.name)
    extra: dict = {"scenario": spec.name,
                   "devices": sum(g.count * g.devices for c in fleet.clusters for g in c.node_groups),
                   "added_nodes": spec.extra_nodes}
    if r:
        extra["replication"] = r
    if outages:
        extra["outage_reach"] = outage_reach(fleet, outages, specs)
    return SpecResult(out, extra)


def local_runner(workers: int, on_done: OnDone | None = None) -> Runner:
    """Run specs on up to `workers` spawned processes (in this process for one worker or one spec); the
    folders are written here as each run finishes."""
    tasks = local_task_runner(workers)

    def run(specs: Sequence[RunSpec]) -> list[dict]:
        return run_specs(specs, tasks, on_done)
    return run


def default_workers() -> int:
    return os.cpu_count() or 1
