"""`meridian whatif SCENARIOS.yaml`: replay scenarios in parallel processes and compare them;
`--find-min-capacity` searches the least added capacity meeting per-tier SLA targets."""

from __future__ import annotations

import argparse
import os

MAX_JOBS = 64                  # parallel replay processes
MAX_FILE_BYTES = 16 * 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("whatif", help="compare capacity/policy scenarios by replay (YAML file)")
    p.add_argument("scenarios", help="scenario file (YAML; see README 'Replay and what-if')")
    p.add_argument("--out", default=None, help="folder for per-scenario outputs, report.html and comparison.json/.csv")
    p.add_argument("--jobs", type=int, default=None, help="parallel processes (default: CPU count)")
    p.add_argument("--find-min-capacity", action="store_true",
                   help="search the least nodes to add (find_min_capacity: in the file) that meet the targets")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from datasets.errors import TraceFormatError
    from datasets.files import InputError, check_writable_dir
    from replay.checks import ReplayInputError
    from replay.reach import describe
    from replay.scenarios import ScenarioError, parse_scenarios
    from replay.whatif import _safe as scenario_folder
    from replay.whatif import check_inputs, find_min_capacity, run_scenarios, write_comparison
    from service.errors import UsageError
    from service.reports.html import write_comparison_report, write_replay_report
    from service.reports.plots import write_plots

    workers = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if not 1 <= workers <= MAX_JOBS:
        raise UsageError(f"--jobs must be between 1 and {MAX_JOBS}, got {workers}")
    data = read_yaml(args.scenarios, UsageError)
    try:
        scenarios, search = parse_scenarios(data)
        check_inputs(scenarios)
        if search is not None:
            check_search(next(s for s in scenarios if s.name == search.scenario), search)
    except ScenarioError as exc:
        raise UsageError(f"{args.scenarios}: {exc}") from None
    if args.out:                        # before any scenario runs: the comparison must have somewhere to go
        try:
            check_writable_dir(args.out)
        except InputError as exc:
            raise UsageError(f"--out {args.out}: {exc}") from None
    if args.find_min_capacity:
        if search is None:
            raise UsageError(f"{args.scenarios}: --find-min-capacity needs a find_min_capacity: section")
        sc = next(s for s in scenarios if s.name == search.scenario)
        try:
            best, tried = find_min_capacity(sc, search, workers)
        except (InputError, ReplayInputError, TraceFormatError) as exc:      # raised before that replay's first epoch
            raise UsageError(f"{args.scenarios}: scenario {sc.name}: {exc}") from None
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
    try:
        summaries = run_scenarios(scenarios, args.out, workers, plotter=None if args.no_plots else write_plots,
                                  reporter=write_replay_report)
    except (InputError, ReplayInputError, TraceFormatError) as exc:          # raised before that replay's first epoch
        raise UsageError(f"{args.scenarios}: {exc}") from None
    print(comparison_table(summaries))
    for s in summaries:
        for entry in s.get("outage_reach", []):
            print(f"{s['scenario']}: {describe(entry)}")
    if args.out:
        write_comparison_report(comparison_rows(summaries), {s.name: f"{scenario_folder(s.name)}/report.html"
                                                             for s in scenarios}, args.out, None)
        write_comparison(args.out, summaries, None)
        if not args.no_plots:
            from service.reports.plots import plot_comparison_of_folders

            plot_comparison_of_folders(args.out, f"what-if {os.path.basename(args.scenarios)}: "
                                                 + " vs ".join(s["scenario"] for s in summaries))
    return 0


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


def read_yaml(path: str, usage_error: type[Exception]) -> object:
    """A scenario file: at most 16 MiB of UTF-8 (a byte-order mark ignored) holding YAML without lone
    surrogates; any fault is one usage_error line naming the file (and line)."""
    import yaml

    from datasets.files import InputError, read_capped
    from models.validate import surrogate_errors

    try:
        raw = read_capped(path, "scenario file", MAX_FILE_BYTES)
    except InputError as exc:
        raise usage_error(str(exc)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise usage_error(f"{path} line {line}: not UTF-8: byte 0x{raw[exc.start]:02x}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise usage_error(f"{path}{where}: not valid YAML: {what}") from None
    except RecursionError:
        raise usage_error(f"{path}: not valid YAML: nested too deeply") from None
    errors = surrogate_errors(data)
    if errors:
        raise usage_error(f"{path}: {errors[0]}")
    return data


def check_search(sc: object, search: object) -> None:
    """find_min_capacity's node group must be one the scenario's fleet can take (its cluster exists, or
    `region:` says where to create it): a ScenarioError naming find_min_capacity's own fields."""
    from datasets.edits import FleetEditError, edit_fleet
    from replay.inputs import load_fleet_arg
    from replay.scenarios import ScenarioError

    try:
        edit_fleet(load_fleet_arg(sc.fleet, sc.seed), [search.nodes(1)])
    except FleetEditError as exc:
        field, _, why = str(exc).partition(": ")
        raise ScenarioError(f"find_min_capacity.{field.split('.')[-1]}: {why}") from None
