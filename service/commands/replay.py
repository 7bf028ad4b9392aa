"""`meridian replay`: replay a trace window through a scheduler on a fleet; summary, CSVs and plots in --out.

The flags' defaults are `replay.options.ReplayOptions`'s, the same a what-if scenario file gets.
"""

from __future__ import annotations

import argparse
import sys
from typing import get_args

from replay.options import DEFAULTS, ReplayOptions, SchedulerName, TraceFormat


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a trace through a policy (cpsat, fifo, las) and report metrics")
    p.add_argument("--trace", required=True, help="trace file, or synthetic[:DAYS] for the seeded generator")
    p.add_argument("--format", default=DEFAULTS.format, choices=get_args(TraceFormat),
                   help=f"trace format (default {DEFAULTS.format})")
    p.add_argument("--fleet", required=True,
                   help="FLEET.json (the contract's fleet object), or single:NODESxDEVICES, philly:MACHINES.csv, "
                        "synthetic[:REGIONS]")
    p.add_argument("--start-day", type=float, default=DEFAULTS.start_day,
                   help="measure the jobs submitted from this day on")
    p.add_argument("--days", type=float, default=DEFAULTS.days,
                   help="... for this many days (default: to the trace's end)")
    p.add_argument("--warmup-days", type=float, default=DEFAULTS.warmup_days,
                   help=f"replayed but not measured (default {DEFAULTS.warmup_days:g})")
    p.add_argument("--policy", dest="scheduler", default=DEFAULTS.scheduler, choices=get_args(SchedulerName),
                   help=f"the scheduler (default {DEFAULTS.scheduler})")
    p.add_argument("--equal-priorities", action="store_true", help="cpsat without the controller (priorities 1.0)")
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
    p.add_argument("--fail", action="append", default=[], metavar="TARGET@DAY[+HOURS]",
                   help="inject an outage: a node, region:NAME or cluster:NAME (repeatable)")
    p.add_argument("--on-bad", default="error", choices=("error", "skip"), help="bad trace rows: stop or skip+count")
    p.add_argument("--max-days", type=float, default=DEFAULTS.max_days,
                   help="safety stop, days after the window's end")
    p.add_argument("--out", required=True, help="output folder (summary.json, epochs.csv, jobs.csv, report.html, *.png)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from replay.report import replay_and_report
    from service.cli import UsageError
    from service.reports.html import write_replay_report
    from service.reports.plots import write_plots

    setup, window, specs, fleet, skipped = setup_from_args(args, UsageError)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    summary = replay_and_report(specs, fleet, setup, window, args.out, progress=progress,
                                plotter=None if args.no_plots else write_plots, reporter=write_replay_report)
    if skipped:
        print(f"skipped trace rows: {skipped}", file=sys.stderr)
    print(format_summary(summary))
    print(f"wrote {args.out}/summary.json, epochs.csv, jobs.csv, report.html"
          + ("" if args.no_plots else ", utilization.png, jct_cdf.png, queue.png"))
    return 0


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
    try:
        outages = [parse_outage(t) for t in args.fail]
        schedule = outage_schedule(fleet, outages) if outages else None
    except ValueError as exc:
        raise usage_error(f"--fail: {exc}") from None
    setup, window = opts.setup(outages=schedule), opts.window()
    if not specs:
        raise usage_error(f"--trace: {args.trace} holds no job")
    return setup, window, specs, fleet, dict(res.skipped)


# The flags whose names are not the option's name with `-` for `_`.
FLAGS = {"scheduler": "--policy", "time_limit_s": "--time-limit", "backfill_window_s": "--backfill-window"}


def options_from_args(args: argparse.Namespace, usage_error: type[Exception]) -> ReplayOptions:
    """The replay options the flags spell; a value out of range is one line naming the flag."""
    from pydantic import ValidationError

    from replay.scenarios import describe_error

    try:
        return ReplayOptions(trace=args.trace, format=args.format, fleet=args.fleet, scheduler=args.scheduler,
                             start_day=args.start_day, days=args.days, warmup_days=args.warmup_days,
                             epoch_s=args.epoch_s, seed=args.seed, time_limit_s=args.time_limit,
                             replan_every=args.replan_every, equal_priorities=args.equal_priorities,
                             max_days=args.max_days, backfill=getattr(args, "backfill", DEFAULTS.backfill),
                             backfill_window_s=getattr(args, "backfill_window_s", DEFAULTS.backfill_window_s))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0])
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        raise usage_error(describe_error(flag, {**err, "loc": ()}).replace(": ", " ", 1)) from None


def format_summary(s: dict) -> str:
    def f(v, fmt="{:.0f}"):
        return "-" if v is None else fmt.format(v)

    att = ", ".join(f"{t} {f(v, '{:.1%}')}" for t, v in s["sla_attainment"].items())
    return (f"{s['policy']}: {s['jobs_completed']}/{s['jobs_submitted']} jobs done, mean JCT {f(s['avg_jct_s'])} s "
            f"(p50 {f(s['p50_jct_s'])}, p99 {f(s['p99_jct_s'])}), mean queue {f(s['avg_queue_s'])} s, "
            f"utilization {f(s['utilization'], '{:.1%}')}, SLA {att}, preemptions {s['preemptions']}, "
            f"planner p50 {f(s['planner_s_p50'], '{:.3f}')} s, wall {s['wall_s']:.1f} s")
