"""`meridian replay`: replay a trace window through a scheduler on a fleet; summary, CSVs and plots in --out.

The flags' defaults are `replay.options.ReplayOptions`'s, the same a what-if scenario file gets.
`--policy fifo,las,cpsat` replays the same trace and fleet once per scheduler, each into `--out/<policy>/`,
and draws `comparison.png` (and `comparison.json`) at `--out`; a single scheduler writes into `--out` itself.
Jobs the fleet can never hold are rejected at arrival: the summary line and `summary.json` count them by
reason, and `--on-reject error` makes such a replay exit 3 (after writing every output).
Every run is written into a staging folder inside `--out` and moved there only once all succeeded
(`replay.staging`): an interrupt or a refused input leaves `--out` as it was, and a finished run removes
an earlier run's files of the command's names that it did not write.
"""

from __future__ import annotations

import argparse
import sys
from typing import get_args

from replay.options import DEFAULTS, IDEAL, ReplayOptions, SchedulerName, ServiceName, TraceFormat


def register(sub: argparse._SubParsersAction) -> None:
    from service.commands.sweep import add_sweep_flags

    p = sub.add_parser("replay", help="replay a trace through a policy (cpsat, fifo, las; las2d-ideal, the "
                                      "ideal reference) and report metrics")
    p.add_argument("--trace", required=True, help="trace file, or synthetic[:DAYS] for the seeded generator")
    p.add_argument("--format", default=DEFAULTS.format, choices=get_args(TraceFormat),
                   help=f"trace format (default {DEFAULTS.format})")
    p.add_argument("--fleet", required=True,
                   help="FLEET.json (the contract's fleet object), or single:NODESxDEVICES, philly:MACHINES.csv, "
                        "alibaba:NODES.csv[?carve=K:SHARE,...&scale=S], synthetic[:REGIONS[xNODES]]")
    p.add_argument("--start-day", type=float, default=DEFAULTS.start_day,
                   help="measure the jobs submitted from this day on")
    p.add_argument("--days", type=float, default=DEFAULTS.days,
                   help="... for this many days (default: to the trace's end)")
    p.add_argument("--warmup-days", type=float, default=DEFAULTS.warmup_days,
                   help=f"replayed but not measured (default {DEFAULTS.warmup_days:g})")
    p.add_argument("--policy", dest="scheduler", default=DEFAULTS.scheduler, type=_policies,
                   metavar="{" + ",".join(get_args(SchedulerName)) + "}[,...]",
                   help=f"the scheduler (default {DEFAULTS.scheduler}); several, comma-separated, are compared "
                        "(one run each under --out/<policy>/, comparison.png at --out)")
    p.add_argument("--equal-priorities", action="store_true", help="cpsat without the controller (priorities 1.0)")
    p.add_argument("--service", default=DEFAULTS.service, choices=get_args(ServiceName),
                   help=f"cpsat's controller, its attained-service factor: levels (multi-level) or gittins (the "
                        f"Gittins index of the service distribution learned online; gittins-class: per "
                        f"devices-per-replica class) (default {DEFAULTS.service})")
    p.add_argument("--epoch-s", type=float, default=DEFAULTS.epoch_s)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seeds the attribute rules and synthetic inputs")
    p.add_argument("--time-limit", type=float, default=DEFAULTS.time_limit_s,
                   help=f"the planner's seconds per epoch (cpsat, default {DEFAULTS.time_limit_s:g})")
    p.add_argument("--replan-every", type=int, default=DEFAULTS.replan_every,
                   help="cpsat: replan quiet epochs this often")
    p.add_argument("--no-backfill", dest="backfill", action="store_false",
                   help="plan on the epoch grid alone (no backfill plans between epochs: the behaviour before them)")
    p.add_argument("--backfill-window", dest="backfill_window_s", type=float, default=DEFAULTS.backfill_window_s,
                   help=f"seconds of arrivals and completions batched into one backfill plan "
                        f"(default {DEFAULTS.backfill_window_s:g})")
    p.add_argument("--backfill-fit-window", dest="backfill_fit_window_s", type=float,
                   default=DEFAULTS.backfill_fit_window_s,
                   help=f"seconds batched instead when every waiting job fits on free devices (0: plan at the "
                        f"event; default {DEFAULTS.backfill_fit_window_s:g})")
    p.add_argument("--fail", action="append", default=[], metavar="TARGET@DAY[+HOURS]",
                   help="inject an outage: a node, region:NAME or cluster:NAME (repeatable)")
    p.add_argument("--on-bad", default="error", choices=("error", "skip"), help="bad trace rows: stop or skip+count")
    p.add_argument("--on-reject", default="warn", choices=("warn", "error"),
                   help="jobs the fleet can never hold: count them and go on (warn), or exit 3 after the run (error)")
    p.add_argument("--max-days", type=float, default=DEFAULTS.max_days,
                   help="safety stop, days after the window's end")
    p.add_argument("--replications", type=int, default=DEFAULTS.replications, metavar="R",
                   help="R runs differing in arrival jitter, attribute seed and outage timing (replay.replications):"
                        " the first as always in --out, the others in --out/replication-r, their means and 95 %% "
                        "intervals in --out/replications.json (default 1)")
    p.add_argument("--out", required=True, help="output folder (summary.json, epochs.csv, jobs.csv, report.html, *.png)")
    p.add_argument("--no-plots", action="store_true")
    add_sweep_flags(p, "the schedulers' runs (--policy a,b,c)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=run)


def _policies(text: str) -> str:
    """`cpsat` or `fifo,las,cpsat`: each a known scheduler, none twice (returned comma-joined)."""
    names = [p.strip() for p in text.split(",")]
    known = get_args(SchedulerName)
    for p in names:
        if p not in known:
            raise argparse.ArgumentTypeError(f"invalid choice: {p!r} (choose from {', '.join(known)}, "
                                             "several joined by commas)")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a scheduler twice")
    return ",".join(names)


def run(args: argparse.Namespace) -> int:
    from datasets.files import InputError
    from replay.report import replay_layout
    from replay.staging import staged
    from service.cli import UsageError

    if not args.out:
        raise UsageError("--out: must not be empty (a folder for summary.json and the tables)")
    policies = args.scheduler.split(",")
    args.scheduler = policies[0]
    if IDEAL in policies and args.fail:
        raise UsageError(f"--fail: the {IDEAL} reference models no outages (--policy {IDEAL}); got {args.fail[0]!r}")
    setup, window, specs, fleet, skipped = setup_from_args(args, UsageError)
    check_inputs(policies, setup, window, specs, fleet)
    check_targets(args, policies)
    if skipped:
        print(f"skipped trace rows: {skipped}", file=sys.stderr)
    try:
        with staged(args.out, replay_layout(get_args(SchedulerName))) as folder:
            summaries, failures, wrote = _run_into(args, policies, folder, setup, window, specs, fleet, skipped)
            if not summaries:
                raise _NoRun
    except InputError as exc:       # the staging folder could not be made in --out
        raise UsageError(f"--out {args.out}: {exc}") from None
    except _NoRun:                  # every run failed (named on stderr): --out keeps what it held
        return 1
    print("\n".join(wrote))
    rejected = {p: s["jobs_rejected"] for p, s in summaries.items() if s["jobs_rejected"]}
    if rejected and args.on_reject == "error":
        print(f"meridian replay: rejected jobs ({', '.join(f'{p} {n}' for p, n in rejected.items())}) and "
              "--on-reject error: exit 3", file=sys.stderr)
        return 3
    return 1 if failures else 0


class _NoRun(Exception):
    """Every run failed: nothing to commit into --out."""


def check_inputs(policies: list[str], setup, window, specs, fleet) -> None:
    """The trace and the fleet checked together (`replay.checks`) before any run is dispatched: a refused
    input is the same one line (exit 2) on every runner, and no run has started or written."""
    import dataclasses

    from replay.checks import ReplayInputError, check_replay_inputs
    from service.cli import UsageError

    for policy in [p for p in policies if p != IDEAL][:1]:      # the ideal reference checks nothing
        try:
            check_replay_inputs(specs, fleet, dataclasses.replace(setup, scheduler=policy), window)
        except ReplayInputError as exc:
            raise UsageError(str(exc)) from None


def check_targets(args: argparse.Namespace, policies: list[str]) -> None:
    """Every folder the run will fill (each scheduler's, each replication's) checked before any run starts,
    making nothing: a folder is not a file there, and none of its file names is a folder."""
    import os

    from datasets.files import InputError
    from replay.report import OUTPUT_FILES
    from replay.staging import check_target
    from service.cli import UsageError

    runs = [args.out] if len(policies) == 1 else [os.path.join(args.out, p) for p in policies]
    targets = [(args.out, ("comparison.json", "comparison.png") if len(policies) > 1 else ())]
    for run_dir in runs:
        targets.append((run_dir, OUTPUT_FILES + (("replications.json",) if args.replications > 1 else ())))
        targets += [(os.path.join(run_dir, f"replication-{r}"), OUTPUT_FILES) for r in range(1, args.replications)]
    for folder, files in targets:
        try:
            check_target(folder, files)
        except InputError as exc:
            raise UsageError(f"--out {folder}: {exc}") from None


def _run_into(args: argparse.Namespace, policies: list[str], stage: str, setup, window, specs, fleet,
              skipped: dict) -> tuple[dict, list, list[str]]:
    """Every scheduler's run written under the staging folder `stage` (which becomes `--out`); the
    summaries by scheduler, the failed runs, and the `wrote ...` lines naming the final paths."""
    import os

    runs: list = []
    summaries: dict = {}
    if args.ray is not None or args.jobs is not None:
        failures = _sweep_policies(args, policies, stage, setup, window, specs, fleet, skipped, runs, summaries)
    else:
        failures = []
        for policy in policies:
            _replay_one(args, policy, stage if len(policies) == 1 else os.path.join(stage, policy), setup, window,
                        specs, fleet, skipped, runs, summaries)
    wrote = [f"wrote {args.out if len(policies) == 1 else os.path.join(args.out, p)}/summary.json, epochs.csv, "
             "jobs.csv, report.html" + ("" if args.no_plots else ", utilization.png, jct_cdf.png, queue.png")
             for p in policies if p in summaries]
    if len(policies) > 1 and summaries:
        wrote.append(_write_comparison(args, policies, stage, runs, summaries))
    return summaries, failures, wrote


def _replay_one(args: argparse.Namespace, policy: str, out: str, setup, window, specs, fleet, skipped: dict,
                runs: list, summaries: dict) -> None:
    """One scheduler's run in this process, written into `out` (with its replications); its summary printed."""
    import dataclasses

    from replay.checks import ReplayInputError
    from replay.report import replay_and_report
    from service.cli import UsageError
    from service.reports.html import write_replay_report
    from service.reports.plots import write_plots

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    captured: dict = {}

    def plotter(epochs, jobs, out_dir, label, pools=()):
        captured.update(epochs=epochs, jobs=jobs)
        return [] if args.no_plots else write_plots(epochs, jobs, out_dir, label, pools)

    try:
        summary = replay_and_report(specs, fleet, dataclasses.replace(setup, scheduler=policy), window, out,
                                    plotter=plotter, progress=progress, trace_skipped=skipped,
                                    title=run_title(policy, args), reporter=write_replay_report)
    except ReplayInputError as exc:    # raised before the replay starts (`check_inputs` found none)
        raise UsageError(str(exc)) from None
    summaries[policy] = summary
    runs.append((summary["policy"], captured.get("epochs", []), captured.get("jobs", [])))
    print(format_summary(summary))
    if args.replications > 1:
        replications_report(args, summary, policy, out)


def _write_comparison(args: argparse.Namespace, policies: list[str], stage: str, runs: list,
                      summaries: dict) -> str:
    """comparison.json (and comparison.png) of the schedulers' runs under `stage`; the `wrote` line."""
    import json
    import os

    from datasets.files import write_atomic
    from service.reports.plots import plot_comparison

    write_atomic(os.path.join(stage, "comparison.json"), json.dumps(summaries, indent=2, allow_nan=False) + "\n")
    written = f"wrote {args.out}/comparison.json"
    if not args.no_plots:
        path = plot_comparison(runs, os.path.join(stage, "comparison.png"), run_title(" vs ".join(policies), args))
        written += f", {os.path.basename(path)}"
    return written


def _sweep_policies(args: argparse.Namespace, policies: list[str], stage: str, setup, window, specs, fleet,
                    skipped: dict, runs: list, summaries: dict) -> list:
    """The schedulers' runs as tasks of a runner (`--jobs` local processes or `--ray`): each returns its
    rows, this process writes every run's folder under `stage` as it finishes; a failed run is named on
    stderr and the others are still written and compared. Fills `runs` and `summaries` in `policies` order."""
    import dataclasses
    import os

    from replay.report import RunOutput, replay_output, write_run
    from replay.runners import Task, TaskFailed
    from service.commands.sweep import progress_printer, sweep_runner
    from service.reports.html import write_replay_report
    from service.reports.plots import write_plots

    def folder(policy: str) -> str:
        return stage if len(policies) == 1 else os.path.join(stage, policy)

    tasks = [Task(p, replay_output, (specs, fleet, dataclasses.replace(setup, scheduler=p), window, p, (), skipped))
             for p in policies]
    show = progress_printer(len(tasks))

    def on_done(i: int, task: Task, res) -> None:
        if isinstance(res, RunOutput):
            write_run(res, folder(task.name), None if args.no_plots else write_plots, write_replay_report,
                      run_title(task.name, args))
        show(i, task, res)

    with sweep_runner(args.ray, args.jobs) as (runner, _):
        results = runner(tasks, on_done)
    failures = []
    for policy, res in zip(policies, results):
        if isinstance(res, TaskFailed):
            print(f"meridian replay: {res}", file=sys.stderr)
            failures.append(res)
            continue
        summaries[policy] = res.summary
        runs.append((res.summary["policy"], res.epochs, res.jobs))
        print(format_summary(res.summary))
        if args.replications > 1:       # the same replications as the default path (local processes)
            replications_report(args, res.summary, policy, folder(policy))
    return failures


def replications_report(args: argparse.Namespace, summary: dict, policy: str, out: str) -> None:
    """Replications 1..R-1 on the local process pool; their means and intervals printed and written."""
    import json
    import os

    from datasets.files import write_atomic
    from replay.runner import RunError, local_runner
    from replay.scenarios import Scenario
    from replay.whatif import replicate
    from service.cli import UsageError

    opts = options_from_args(args, UsageError)
    sc = Scenario(**(opts.model_dump() | {"scheduler": policy}), name=policy, outages=list(args.fail))
    try:
        row = replicate(sc, summary, out, local_runner(os.cpu_count() or 1), args.on_bad)
    except RunError as exc:
        raise UsageError(str(exc)) from None
    write_atomic(os.path.join(out, "replications.json"), json.dumps(row, indent=2, default=str) + "\n")
    print(format_replications(row))


def format_replications(row: dict) -> str:
    """The means over the replications with their 95 % intervals, one line."""
    def ci(v, c, pct=False):
        if v is None:
            return "-"
        f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.0f}")
        return f"{f(v)}{' %' if pct else ''}" + (f" [{f(c[0])}, {f(c[1])}]" if c else "")
    att = ", ".join(f"{t} {ci(v, row['sla_attainment_ci95'].get(t), True)}" for t, v in row["sla_attainment"].items())
    return (f"{row['replications']} replications, means and 95 % intervals: mean JCT "
            f"{ci(row['avg_jct_s'], row.get('avg_jct_s_ci95'))} s, utilization "
            f"{ci(row['utilization'], row.get('utilization_ci95'), True)}, SLA {att}")


def run_title(policy: str, args: argparse.Namespace) -> str:
    """`cpsat · fleet alibaba:nodes.csv?carve=2:0.4 · trace pods.csv, days 118-125`: what a plot shows."""
    import os

    fleet = args.fleet
    kind, sep, rest = fleet.partition(":")
    if sep and kind in ("philly", "alibaba"):
        fleet = f"{kind}:{os.path.basename(rest)}"
    elif not sep:
        fleet = os.path.basename(fleet)
    trace = os.path.basename(args.trace)
    if args.start_day is None:
        when = "whole trace" if args.days is None else f"first {args.days:g} days"
    else:
        when = f"days {args.start_day:g}-" + ("end" if args.days is None else f"{args.start_day + args.days:g}")
    return f"{policy} · fleet {fleet} · trace {trace}, {when}"


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def setup_from_args(args: argparse.Namespace, usage_error: type[Exception]):
    """(setup, window, specs, fleet, skipped counts) from parsed arguments; user mistakes raise usage_error."""
    from datasets.errors import TraceFormatError
    from replay.inputs import load_fleet_arg, load_specs
    from replay.outages import outage_schedule, parse_outage

    opts = options_from_args(args, usage_error)
    try:
        fleet = load_fleet_arg(args.fleet, args.seed)
    except (ValueError, OSError) as exc:
        if hasattr(exc, "errors"):
            raise
        raise usage_error(f"--fleet: {exc}") from None
    try:
        specs, res = load_specs(args.trace, args.format, args.seed, args.on_bad)
    except TraceFormatError as exc:
        raise usage_error(f"--trace: {exc}") from None
    except OSError as exc:
        raise usage_error(f"--trace: cannot read {args.trace}: {exc.strerror}") from None
    window = opts.window()
    if not specs:
        raise usage_error(f"--trace: {args.trace} holds no job")
    empty = window.empty_reason(specs)
    if empty:
        raise usage_error(f"--start-day/--days: {empty}")
    try:
        outages = [parse_outage(t, window.stop_s(specs, opts.max_days)) for t in args.fail]
        schedule = outage_schedule(fleet, outages) if outages else None
    except ValueError as exc:
        raise usage_error(f"--fail: {exc}") from None
    setup = opts.setup(outages=schedule)
    return setup, window, specs, fleet, dict(res.skipped)


# The flags whose names are not the option's name with `-` for `_`.
FLAGS = {"scheduler": "--policy", "time_limit_s": "--time-limit", "backfill_window_s": "--backfill-window",
         "backfill_fit_window_s": "--backfill-fit-window"}


def options_from_args(args: argparse.Namespace, usage_error: type[Exception]) -> ReplayOptions:
    """The replay options the flags spell; a value out of range is one line naming the flag."""
    from pydantic import ValidationError

    from replay.scenarios import describe_error

    try:
        return ReplayOptions(trace=args.trace, format=args.format, fleet=args.fleet, scheduler=args.scheduler,
                             start_day=args.start_day, days=args.days, warmup_days=args.warmup_days,
                             epoch_s=args.epoch_s, seed=args.seed, time_limit_s=args.time_limit,
                             replan_every=args.replan_every, equal_priorities=args.equal_priorities,
                             service=getattr(args, "service", DEFAULTS.service),
                             max_days=args.max_days, backfill=getattr(args, "backfill", DEFAULTS.backfill),
                             backfill_window_s=getattr(args, "backfill_window_s", DEFAULTS.backfill_window_s),
                             backfill_fit_window_s=getattr(args, "backfill_fit_window_s",
                                                           DEFAULTS.backfill_fit_window_s),
                             replications=getattr(args, "replications", 1))
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:          # a rule over several options (the number of epochs)
            raise usage_error(f"--epoch-s, --days, --warmup-days, --max-days: "
                              f"{str(err['msg']).removeprefix('Value error, ')}") from None
        name = str(err["loc"][0])
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        raise usage_error(describe_error(flag, {**err, "loc": ()}, repr).replace(": ", " ", 1)) from None


def format_summary(s: dict) -> str:
    def f(v, fmt="{:.0f}"):
        return "-" if v is None else fmt.format(v)

    att = ", ".join(f"{t} {f(v, '{:.1%}')}" for t, v in s["sla_attainment"].items())
    rej = ""
    if s.get("jobs_rejected"):
        why = "; ".join(f"{n} {r}" for r, n in list(s.get("rejected_by_reason", {}).items())[:3])
        rej = f", REJECTED {s['jobs_rejected']} ({why})"
    skipped = s.get("trace_skipped") or {}
    skip = f", trace rows skipped {sum(skipped.values())} ({_counts(skipped)})" if skipped else ""
    return (f"{s['policy']}: {s['jobs_completed']}/{s['jobs_submitted']} jobs done{rej}{skip}, "
            f"mean JCT {f(s['avg_jct_s'])} s "
            f"(p50 {f(s['p50_jct_s'])}, p99 {f(s['p99_jct_s'])}), mean queue {f(s['avg_queue_s'])} s, "
            f"utilization {f(s['utilization'], '{:.1%}')}, SLA {att}, preemptions {s['preemptions']}, "
            f"planner p50 {f(s['planner_s_p50'], '{:.3f}')} s, wall {s['wall_s']:.1f} s")
