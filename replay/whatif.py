"""What-if capacity planning: scenarios (`replay.scenarios`) replayed in parallel processes, and
`find_min_capacity`, the search for the least added capacity that meets SLA targets.

`find_min_capacity` assumes more nodes never hurt attainment and searches the node count with
`workers` replays per round in parallel (a k-ary search), reporting the least count that meets every
tier's target and the summary it got.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence

from datasets.edits import FleetEditError, edit_fleet, scale_demand
from datasets.files import write_atomic
from replay.inputs import load_fleet_arg, load_specs
from replay.outages import outage_schedule, parse_outage
from replay.reach import outage_reach
from replay.report import Plotter, Reporter, RunOutput, replay_output, write_run
from replay.runners import OnDone, Runner, Task, TaskFailed, local_runner
from replay.scenarios import CapacitySearch, Scenario, ScenarioError


def check_inputs(scenarios: Sequence[Scenario]) -> None:
    """Load every scenario's fleet and changes up front, so a typo fails before any replay starts."""
    for i, sc in enumerate(scenarios):
        try:
            fleet = edit_fleet(load_fleet_arg(sc.fleet, sc.seed), sc.add_nodes, sc.remove_nodes)
            outage_schedule(fleet, [parse_outage(o) for o in sc.outages])
        except FleetEditError as exc:
            raise ScenarioError(f"scenarios[{i}].{exc}") from None
        except (ValueError, OSError) as exc:
            raise ScenarioError(f"scenarios[{i}] ({sc.name}): {exc}") from None
        if not sc.trace.startswith("synthetic") and not os.path.exists(sc.trace):
            raise ScenarioError(f"scenarios[{i}].trace: no such file {sc.trace!r}")


def scenario_output(sc: Scenario, extra_nodes: int = 0, search: CapacitySearch | None = None) -> RunOutput:
    """One scenario's replay (a sweep task: in a worker process or a Ray task); writes nothing."""
    add = list(sc.add_nodes)
    if extra_nodes and search is not None:
        add.append(search.nodes(extra_nodes))
    fleet = edit_fleet(load_fleet_arg(sc.fleet, sc.seed), add, sc.remove_nodes)
    specs, _ = load_specs(sc.trace, sc.format, sc.seed)
    specs = scale_demand(specs, sc.demand_scale, sc.seed)
    outages = [parse_outage(o) for o in sc.outages]
    targets = dict(sc.sla_targets)
    if search is not None:
        targets.update(search.targets)
    setup = sc.setup(outages=outage_schedule(fleet, outages) if outages else None, sla_targets=targets)
    out = replay_output(specs, fleet, setup, sc.window(), label=sc.name)
    out.summary["scenario"] = sc.name
    out.summary["devices"] = sum(g.count * g.devices for c in fleet.clusters for g in c.node_groups)
    out.summary["added_nodes"] = extra_nodes
    if outages:
        out.summary["outage_reach"] = outage_reach(fleet, outages, specs)
    return out


def run_scenario(sc: Scenario, out_dir: str | None, plotter: Plotter | None, extra_nodes: int = 0,
                 search: CapacitySearch | None = None, reporter: Reporter | None = None) -> dict:
    """One scenario's replay, its outputs written under `out_dir`; its summary, with the scenario's name."""
    out = scenario_output(sc, extra_nodes, search)
    if out_dir:
        write_run(out, out_dir, plotter, reporter)
    return out.summary


def run_scenarios(scenarios: Sequence[Scenario], out_dir: str | None, workers: int,
                  plotter: Plotter | None = None, reporter: Reporter | None = None, runner: Runner | None = None,
                  on_done: OnDone | None = None) -> list[dict | TaskFailed]:
    """Every scenario as one task of `runner` (default: `workers` local processes), in file order; the
    driver (this process) writes each run's outputs as it finishes. A scenario that fails is a
    `TaskFailed` in its place; the others still run."""
    runner = runner or local_runner(workers)
    tasks = [Task(s.name, scenario_output, (s,)) for s in scenarios]

    def done(i: int, task: Task, res) -> None:
        if out_dir and isinstance(res, RunOutput):
            write_run(res, os.path.join(out_dir, _safe(scenarios[i].name)), plotter, reporter)
        if on_done:
            on_done(i, task, res)

    return [r.summary if isinstance(r, RunOutput) else r for r in runner(tasks, done)]


class SweepFailed(RuntimeError):
    """Runs of a sweep that failed, by name."""

    def __init__(self, failures: Sequence[TaskFailed]):
        self.failures = list(failures)
        super().__init__("; ".join(str(f) for f in failures))


def meets(summary: dict, targets: dict[str, float]) -> bool:
    """Whether every tier's attainment (share of jobs at or above its SLA ratio target) reaches its target."""
    att = summary.get("sla_attainment", {})
    return all(att.get(t) is not None and att[t] >= v - 1e-12 for t, v in targets.items())


def find_min_capacity(sc: Scenario, search: CapacitySearch, workers: int,
                      evaluate: Callable[[int], dict] | None = None, runner: Runner | None = None,
                      on_done: OnDone | None = None) -> tuple[int | None, dict[int, dict]]:
    """The least number of added nodes (0..max_nodes) whose replay meets the targets, or None when even
    `max_nodes` does not; with every evaluated count's summary. k-ary search, `workers` counts per round,
    each round's candidates run as tasks of `runner` (default: local processes). A candidate that fails
    raises `SweepFailed` (the search cannot go on without its answer)."""
    tried: dict[int, dict] = {}
    runner = runner or local_runner(workers)

    def run_many(counts: list[int]) -> None:
        counts = [c for c in counts if c not in tried]
        if not counts:
            return
        if evaluate is not None:
            for c in counts:
                tried[c] = evaluate(c)
            return
        tasks = [Task(f"{sc.name}+{c}", scenario_output, (sc, c, search)) for c in counts]
        results = runner(tasks, on_done)
        bad = [r for r in results if isinstance(r, TaskFailed)]
        if bad:
            raise SweepFailed(bad)
        for c, r in zip(counts, results):
            tried[c] = r.summary

    run_many([0, search.max_nodes])
    if meets(tried[0], search.targets):
        return 0, tried
    if not meets(tried[search.max_nodes], search.targets):
        return None, tried
    lo, hi = 0, search.max_nodes          # lo fails, hi meets
    k = max(1, workers)
    while hi - lo > 1:
        step = (hi - lo) / (k + 1)
        probes = sorted({min(hi - 1, max(lo + 1, lo + round(step * (i + 1)))) for i in range(k)})
        run_many(probes)
        for c in probes:
            if meets(tried[c], search.targets):
                hi = min(hi, c)
        lo = max([lo] + [c for c in probes if c < hi and not meets(tried[c], search.targets)])
    return hi, tried


COMPARISON_COLUMNS = ("scenario", "devices", "jobs_submitted", "jobs_completed", "avg_jct_s", "p50_jct_s",
                      "p99_jct_s", "avg_queue_s", "utilization", "preemptions", "migrations", "wall_s")


def write_comparison(out: str, rows: list[dict], search: dict | None) -> None:
    """comparison.json (every summary, and the search's answer) and comparison.csv under `out`."""
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, "comparison.json"),
                 json.dumps({"scenarios": rows, "search": search}, indent=2, default=str) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(COMPARISON_COLUMNS) + ["sla_premium", "sla_standard"])
    for s in rows:
        w.writerow([s.get(k) for k in COMPARISON_COLUMNS]
                   + [s["sla_attainment"].get("premium"), s["sla_attainment"].get("standard")])
    write_atomic(os.path.join(out, "comparison.csv"), buf.getvalue())


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
