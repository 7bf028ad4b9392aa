"""What-if capacity planning: scenarios (`replay.scenarios`) replayed R times each (`replay.replications`)
on a runner (`replay.runner`), summed up with intervals (`replay.intervals`), and `find_min_capacity`, the
search for the least added capacity whose attainment meets the search's targets.

Two notions, two names: a scenario's `sla_targets` is the per-job SLA ratio a tier's jobs should reach
(the controller's and the metric's rule; every candidate of the search keeps its scenario's); the
search's `attainment_targets` (the file's old key `targets` still loads) is the share of a tier's jobs that
must reach it. A candidate meets an attainment target when the lower end of the one-sided 95 % t-interval
of its mean attainment over the replications does (the mean itself for R = 1).

The search assumes nothing about monotonicity: it replays the counts 0, step, 2 step, ... up to
`max_nodes` in that order, a fixed batch at a time (the batch does not depend on `--jobs`, so neither do
the results), and stops after the first batch holding a count that meets; every smaller count was replayed
and missed. Among the counts it replayed, it reports each pair where more capacity gave a lower mean
attainment (significantly, by the paired t-interval of the common-random-number differences, for R >= 2).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from datasets.attributes import JobSpec
from datasets.edits import FleetEditError, edit_fleet, scale_demand
from datasets.errors import TraceFormatError
from datasets.files import write_atomic
from replay.inputs import load_fleet_arg, load_specs
from replay.intervals import aggregate, upper95
from replay.outages import outage_schedule, parse_outage
from replay.report import Plotter, Reporter
from replay.runner import Runner, RunSpec, local_runner, run_one
from replay.scenarios import CapacitySearch, Scenario, ScenarioError, folder_name


def check_inputs(scenarios: Sequence[Scenario]) -> None:
    """Load every scenario's fleet, changes and trace once, before any worker starts: a typo or a bad trace
    row is one ScenarioError line (with the trace's file and line), not a worker's traceback; an outage
    starting after the replay's hard stop is refused by the rule `--fail` follows (`replay.outages`)."""
    loaded: dict[tuple, tuple[str | None, list[JobSpec]]] = {}
    for i, sc in enumerate(scenarios):
        try:
            fleet = edit_fleet(load_fleet_arg(sc.fleet, sc.seed), sc.add_nodes, sc.remove_nodes)
            outage_schedule(fleet, [parse_outage(o) for o in sc.outages])
        except FleetEditError as exc:
            raise ScenarioError(f"scenarios[{i}].{exc}") from None
        except (ValueError, OSError) as exc:
            raise ScenarioError(f"scenarios[{i}] ({sc.name}): {exc}") from None
        key = (sc.trace, sc.format, sc.seed, sc.start_day, sc.days)
        if key not in loaded:
            loaded[key] = _trace_problem(sc)
        problem, specs = loaded[key]
        if problem is not None:
            raise ScenarioError(f"scenarios[{i}].trace: {problem}")
        if sc.outages:
            stop_s = sc.window().stop_s(scale_demand(specs, sc.demand_scale, sc.seed), sc.max_days)
            for j, o in enumerate(sc.outages):
                try:
                    parse_outage(o, stop_s)
                except ValueError as exc:
                    raise ScenarioError(f"scenarios[{i}].outages[{j}]: {exc}") from None


def check_search(sc: Scenario, search: CapacitySearch) -> None:
    """The search's node group must fit its scenario's fleet (an existing cluster, or a new one in an
    existing region): one ScenarioError line before any replay, not a failure in every worker."""
    try:
        edit_fleet(load_fleet_arg(sc.fleet, sc.seed), [*sc.add_nodes, search.nodes(1)], sc.remove_nodes)
    except FleetEditError as exc:
        what = str(exc).partition(": ")[2]
        raise ScenarioError(f"find_min_capacity.cluster: {what}") from None


def _trace_problem(sc: Scenario) -> tuple[str | None, list[JobSpec]]:
    """What is wrong with the scenario's trace and window (None: nothing), and the trace's specs."""
    if not sc.trace.startswith("synthetic") and not os.path.exists(sc.trace):
        return f"no such file {sc.trace!r}", []
    try:
        specs, _ = load_specs(sc.trace, sc.format, sc.seed)
    except TraceFormatError as exc:
        return f"{exc} (format {sc.format})", []
    except OSError as exc:
        return f"cannot read {sc.trace}: {exc.strerror}", []
    except ValueError as exc:
        return f"{sc.trace!r}: {exc}", []
    if not specs:
        return f"{sc.trace} holds no job", specs
    return sc.window().empty_reason(specs), specs


def replication_dir(out_dir: str | None, replication: int) -> str | None:
    """Replication 0 writes where a single run always did; replication r >= 1 under `replication-r/`."""
    if out_dir is None or replication == 0:
        return out_dir
    return os.path.join(out_dir, f"replication-{replication}")


def run_scenario(sc: Scenario, out_dir: str | None, plotter: Plotter | None, extra_nodes: int = 0,
                 search: CapacitySearch | None = None, replication: int = 0,
                 reporter: Reporter | None = None) -> dict:
    """One replication of one scenario (or search candidate) in this process; its summary."""
    label = candidate_name(sc, search, extra_nodes) if search is not None else None
    return run_one(RunSpec(sc, replication, extra_nodes, search, out_dir, plotter or None, label=label,
                           reporter=reporter))


def candidate_name(sc: Scenario, search: CapacitySearch, n: int) -> str:
    return f"{sc.name}+{n}x{search.devices}{search.accelerator}"


def run_scenarios(scenarios: Sequence[Scenario], out_dir: str | None, workers: int = 1,
                  plotter: Plotter | None = None, runner: Runner | None = None,
                  reporter: Reporter | None = None) -> list[dict]:
    """Every scenario's replications on the runner (default: `workers` local processes); one row per
    scenario, in file order: the means, the intervals and the per-replication values (`replay.intervals`)."""
    run = runner or local_runner(workers)
    specs = []
    for sc in scenarios:
        d = os.path.join(out_dir, _safe(sc.name)) if out_dir else None
        specs += [RunSpec(sc, r, out_dir=replication_dir(d, r), plotter=plotter, reporter=reporter)
                  for r in range(sc.replications)]
    results = run(specs)
    rows, i = [], 0
    for sc in scenarios:
        rows.append(aggregate(results[i:i + sc.replications]))
        i += sc.replications
    return rows


def meets(row: dict, targets: dict[str, float]) -> bool:
    """Whether every tier's attainment meets its target: the one-sided 95 % lower end when the row has
    replications (`sla_attainment_lower95`), else the attainment itself."""
    low = row.get("sla_attainment_lower95") or {}
    att = row.get("sla_attainment", {})
    for t, v in targets.items():
        x = low.get(t, att.get(t)) if low else att.get(t)
        if x is None or x < v - 1e-12:
            return False
    return True


@dataclass
class SearchResult:
    least_nodes: int | None                        # None: not met up to max_nodes
    rows: dict[int, dict] = field(default_factory=dict)          # added nodes -> comparison row
    monotonicity_breaks: list[dict] = field(default_factory=list)


def search_counts(search: CapacitySearch) -> list[int]:
    """The counts the search may replay, in order: 0, step, 2 step, ..., and max_nodes."""
    counts = list(range(0, search.max_nodes + 1, search.step))
    return counts if counts[-1] == search.max_nodes else counts + [search.max_nodes]


def find_min_capacity(sc: Scenario, search: CapacitySearch, workers: int = 1, runner: Runner | None = None,
                      on_row: Callable[[int, dict], None] | None = None) -> SearchResult:
    """The least count meeting `search.attainment_targets` (see the module docstring), every replayed
    count's row, and the monotonicity breaks among them. `on_row(count, row)` hears each row as it comes."""
    run = runner or local_runner(workers)
    R = sc.replications
    batch = max(1, 4 // R)          # counts per round: fixed, so the rows do not depend on the workers
    counts = search_counts(search)
    result = SearchResult(None)
    for b in range(0, len(counts), batch):
        chunk = counts[b:b + batch]
        specs = [RunSpec(sc, r, n, search, label=candidate_name(sc, search, n)) for n in chunk for r in range(R)]
        out = run(specs)
        for j, n in enumerate(chunk):
            result.rows[n] = aggregate(out[j * R:(j + 1) * R])
            if on_row is not None:
                on_row(n, result.rows[n])
        hits = [n for n in chunk if meets(result.rows[n], search.attainment_targets)]
        if hits:
            result.least_nodes = hits[0]
            break
    result.monotonicity_breaks = monotonicity_breaks(result.rows, search.attainment_targets)
    return result


def monotonicity_breaks(rows: dict[int, dict], targets: dict[str, float]) -> list[dict]:
    """Pairs of consecutive replayed counts where more capacity lowered a targeted tier's mean attainment,
    or turned a met target into a miss. `significant`: the paired (common random numbers) one-sided 95 %
    upper bound of the change is below zero (for one replication: any drop)."""
    out = []
    counts = sorted(rows)
    for a, b in pairwise(counts):
        ra, rb = rows[a], rows[b]
        for tier, target in targets.items():
            va = ra.get("replication_values", {}).get("sla_attainment", {}).get(tier) or []
            vb = rb.get("replication_values", {}).get("sla_attainment", {}).get(tier) or []
            ma, mb = ra["sla_attainment"].get(tier), rb["sla_attainment"].get(tier)
            if ma is None or mb is None:
                continue
            verdict = meets(ra, {tier: target}) and not meets(rb, {tier: target})
            if mb >= ma - 1e-12 and not verdict:
                continue
            diffs = [y - x for x, y in zip(va, vb) if x is not None and y is not None]
            up = upper95(diffs) if len(diffs) >= 2 else (mb - ma)
            out.append({"from_nodes": a, "to_nodes": b, "tier": tier, "attainment_from": ma, "attainment_to": mb,
                        "met_then_missed": verdict, "significant": up is not None and up < -1e-12})
    return out


COMPARISON_COLUMNS = ("scenario", "devices", "jobs_submitted", "jobs_completed", "avg_jct_s", "p50_jct_s",
                      "p99_jct_s", "avg_queue_s", "utilization", "preemptions", "migrations", "wall_s")
INTERVAL_COLUMNS = ("avg_jct_s", "utilization")


def write_comparison(out: str, rows: list[dict], search: dict | None) -> None:
    """comparison.json (every row, and the search's answer) and comparison.csv under `out`; the CSV keeps
    today's columns first, then `replications` and the intervals' ends (`<key>_ci95_lo/_hi`)."""
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, "comparison.json"),
                 json.dumps({"scenarios": rows, "search": search}, indent=2, default=str) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    tiers = ("premium", "standard")
    extra = ["replications"] + [f"{k}_ci95_{e}" for k in INTERVAL_COLUMNS for e in ("lo", "hi")] + \
            [f"sla_{t}_ci95_{e}" for t in tiers for e in ("lo", "hi")]
    w.writerow(list(COMPARISON_COLUMNS) + [f"sla_{t}" for t in tiers] + extra)
    for s in rows:
        ci = [(s.get(f"{k}_ci95") or [None, None])[e] for k in INTERVAL_COLUMNS for e in (0, 1)]
        sci = [((s.get("sla_attainment_ci95") or {}).get(t) or [None, None])[e] for t in tiers for e in (0, 1)]
        w.writerow([s.get(k) for k in COMPARISON_COLUMNS]
                   + [s["sla_attainment"].get(t) for t in tiers] + [s.get("replications", 1)] + ci + sci)
    write_atomic(os.path.join(out, "comparison.csv"), buf.getvalue())


def _safe(name: str) -> str:
    return folder_name(name)


def replicate(sc: Scenario, first: dict, out_dir: str | None, runner: Runner, on_bad: str = "error") -> dict:
    """`meridian replay --replications R`: replications 1..R-1 of a replay whose replication 0 (`first`, run
    and written as always) is done; their row, as a what-if row (`replay.intervals.aggregate`)."""
    specs = [RunSpec(sc, r, out_dir=replication_dir(out_dir, r), on_bad=on_bad, label=sc.name)
             for r in range(1, sc.replications)]
    rest = runner(specs)
    first = dict(first, scenario=sc.name)
    return aggregate([first] + [{k: v for k, v in s.items() if k in first} for s in rest])
