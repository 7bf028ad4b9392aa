"""`meridian whatif SCENARIOS.yaml`: replay scenarios in parallel (local processes or Ray tasks) and
compare them; `--find-min-capacity` searches the least added capacity meeting per-tier SLA targets.
The runs return their results; this process writes every file."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    from service.commands.sweep import add_sweep_flags

    p = sub.add_parser("whatif", help="compare capacity/policy scenarios by replay (YAML file)")
    p.add_argument("scenarios", help="scenario file (YAML; see README 'Replay and what-if')")
    p.add_argument("--out", default=None, help="folder for per-scenario outputs, report.html and comparison.json/.csv")
    p.add_argument("--find-min-capacity", action="store_true",
                   help="search the least nodes to add (find_min_capacity: in the file) that meet the targets")
    p.add_argument("--no-plots", action="store_true")
    add_sweep_flags(p, "scenarios (and the search's candidates)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from replay.scenarios import ScenarioError, parse_scenarios
    from replay.whatif import check_inputs
    from service.commands.sweep import sweep_runner
    from service.errors import UsageError

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    try:
        with open(args.scenarios) as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {args.scenarios}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{args.scenarios}: not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        scenarios, search = parse_scenarios(data)
        check_inputs(scenarios)
    except ScenarioError as exc:
        raise UsageError(f"{args.scenarios}: {exc}") from None
    if args.find_min_capacity and search is None:
        raise UsageError(f"{args.scenarios}: --find-min-capacity needs a find_min_capacity: section")
    with sweep_runner(args.ray, args.jobs) as (runner, workers):
        return _sweep(args, scenarios, search, runner, workers)


def _sweep(args: argparse.Namespace, scenarios, search, runner, workers: int) -> int:
    import sys

    from replay.reach import describe
    from replay.runners import TaskFailed
    from replay.whatif import SweepFailed, find_min_capacity, run_scenarios, write_comparison
    from replay.whatif import _safe as scenario_folder
    from service.commands.sweep import progress_printer
    from service.reports.html import write_comparison_report, write_replay_report
    from service.reports.plots import write_plots

    if args.find_min_capacity:
        sc = next(s for s in scenarios if s.name == search.scenario)
        try:
            best, tried = find_min_capacity(sc, search, workers, runner=runner, on_done=progress_printer(None))
        except SweepFailed as exc:
            for f in exc.failures:
                print(f"failed: {f}", file=sys.stderr)
            return 1
        rows = [dict(s, scenario=f"{sc.name}+{n}x{search.devices}{search.accelerator}") for n, s in sorted(tried.items())]
        print(comparison_table(rows, search.targets))
        what = f"{search.accelerator} nodes of {search.devices} in {search.cluster}"
        if best is None:
            verdict = f"not met: even {search.max_nodes} added {what} miss the targets {search.targets}"
        else:
            verdict = f"least added capacity meeting {search.targets}: {best} {what} (+{best * search.devices} devices)"
        print(verdict)
        if args.out:
            # report.html first: comparison.json, written last, says the comparison finished.
            write_comparison_report(comparison_rows(rows, search.targets), {}, args.out, verdict)
            write_comparison(args.out, rows, {"least_nodes": best, "devices_per_node": search.devices,
                                              "cluster": search.cluster, "accelerator": search.accelerator,
                                              "targets": search.targets})
        return 0 if best is not None else 1
    results = run_scenarios(scenarios, args.out, workers, plotter=None if args.no_plots else write_plots,
                            reporter=write_replay_report, runner=runner, on_done=progress_printer(len(scenarios)))
    failures = [r for r in results if isinstance(r, TaskFailed)]
    summaries = [r for r in results if not isinstance(r, TaskFailed)]
    print(comparison_table(summaries))
    for f in failures:
        print(f"failed: {f}", file=sys.stderr)
    for s in summaries:
        for entry in s.get("outage_reach", []):
            print(f"{s['scenario']}: {describe(entry)}")
    if args.out:
        failed = {f.name for f in failures}
        write_comparison_report(comparison_rows(summaries), {s.name: f"{scenario_folder(s.name)}/report.html"
                                                             for s in scenarios if s.name not in failed},
                                args.out, None)
        write_comparison(args.out, summaries, None)
        if not args.no_plots:
            from service.reports.plots import plot_comparison_of_folders

            plot_comparison_of_folders(args.out, f"what-if {os.path.basename(args.scenarios)}: "
                                                 + " vs ".join(s["scenario"] for s in summaries))
    return 1 if failures else 0


def comparison_table(rows: list[dict], targets: dict | None = None) -> str:
    from service.reports.table import render

    return render(comparison_rows(rows, targets))


def comparison_rows(rows: list[dict], targets: dict | None = None) -> list[list[str]]:
    """The comparison as rows of cells, header first (the terminal table and report.html show the same)."""
    from replay.whatif import meets
    from service.reports.table import cell

    cols = ["scenario", "devices", "jobs", "done", "mean JCT s", "p99 JCT s", "mean queue s", "util",
            "SLA premium", "SLA standard", "preempt", "wall s"]
    if targets:
        cols.append("meets")
    out = [cols]
    for s in rows:
        att = s.get("sla_attainment", {})
        r = [s.get("scenario", s["policy"]), str(s.get("devices", "")), str(s["jobs_submitted"]), str(s["jobs_completed"]),
             cell(s["avg_jct_s"]), cell(s["p99_jct_s"]), cell(s["avg_queue_s"]), cell(s["utilization"], "{:.1%}"),
             cell(att.get("premium"), "{:.1%}"), cell(att.get("standard"), "{:.1%}"), str(s["preemptions"]),
             cell(s["wall_s"], "{:.1f}")]
        if targets:
            r.append("yes" if meets(s, targets) else "no")
        out.append(r)
    return out
