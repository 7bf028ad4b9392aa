"""Philly replay benchmark: cpsat vs fifo vs las vs cpsat-with-equal-priorities on the contended fleet.

    .venv/bin/python bench/replay_philly.py [--start-day 30 --days 7 --warmup-days 3] [--time-limit 0.5]
                                            [--policies cpsat,fifo,las,cpsat-equal] [--out DIR] [--full]
    .venv/bin/python bench/replay_philly.py --windows 30,44,60 --policies fifo,las,cpsat --backfill both [--jobs 2]

`--policies` may name `las2d-ideal`: not a scheduler Meridian runs but the ideal reference of issue 11's
moonshot (`replay/ideal_las.py`: Tiresias's discretised 2D-LAS, event-driven, free and instant
preemption, no contract pauses, no epochs), on the same jobs, fleet, measured set and floor; it has
no backfill mode (one row, backfill "ideal"), its queues' thresholds from `--ideal-thresholds`, its
order within a queue from `--ideal-order`.

`--windows` replays several windows (start days, each `--days` long after `--warmup-days`) and
`--backfill on|off|both` with and without backfill plans between epochs (default: on, the replay's
default), then prints one table over all of them (mean JCT, above the floor, p99, SLA, preemptions,
wall) and the issue's targets window by window; `--jobs N` runs N replays at once in forked processes.

The fleet is one region, one cluster, 80 nodes of 8 GPUs (640 GPUs), because the whole Philly fleet
(2,490 GPUs) is rarely contended by this trace; 300 s epochs; seed 0. Reads the trace from
../shared/traces (never copied). Prints one row per policy and the issue's targets against the
figures measured in this run. `--full` instead replays the whole trace on the Philly machine list
with cpsat (the 30-minute target). Policies run one after another, so each wall time is its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRACES = ROOT.parent / "shared" / "traces"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default=str(TRACES))
    ap.add_argument("--start-day", type=float, default=30)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--warmup-days", type=float, default=3)
    ap.add_argument("--nodes", type=int, default=80)
    ap.add_argument("--epoch-s", type=float, default=300)
    ap.add_argument("--time-limit", type=float, default=0.5)
    ap.add_argument("--replan-every", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", default="cpsat,fifo,las,cpsat-equal")
    ap.add_argument("--out", default=None, help="write each policy's summary, CSVs and plots under DIR/POLICY")
    ap.add_argument("--full", action="store_true", help="the whole trace on the Philly fleet, cpsat only")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--windows", default=None, help="comma-separated start days: one window each (default: --start-day)")
    ap.add_argument("--backfill", choices=("on", "off", "both"), default="on",
                    help="backfill plans between epochs: on (the default), off (epochs only, as before), both")
    ap.add_argument("--backfill-window", type=float, default=None, help="seconds batched per backfill plan")
    ap.add_argument("--backfill-fit-window", type=float, default=5.0,
                    help="seconds batched when every waiting job fits (negative: none, every batch waits "
                         "--backfill-window)")
    ap.add_argument("--ideal-thresholds", default="1",
                    help="las2d-ideal: its queues' thresholds in attained GPU-hours, comma-separated (default 1: "
                         "two queues, as the las baseline)")
    ap.add_argument("--ideal-order", choices=("tiresias", "fifo", "srpt"), default="tiresias",
                    help="las2d-ideal: order within a queue: tiresias (the default: waiting jobs move behind the "
                         "running ones after every round, as Tiresias's simulator), fifo (by submission, as las) "
                         "or srpt (clairvoyant: least device-seconds of trace work left first, one queue)")
    ap.add_argument("--service", choices=("levels", "gittins", "gittins-class", "clairvoyant"), default=None,
                    help="cpsat's controller, its attained-service factor (default: the replay's, "
                         "replay.options): levels or the Gittins index learned online (replay.gittins); clairvoyant "
                         "is a reference that reads each job's trace work left (shortest first)")
    ap.add_argument("--controller-options", default="{}", metavar="JSON",
                    help="cpsat: more SlaController fields as a JSON object (tuning), e.g. "
                         "'{\"gittins_exponent\": 0.5}'")
    ap.add_argument("--jobs", type=int, default=1,
                    help="--windows: replays run in this many processes at once (each wall time is then "
                         "measured beside the others)")
    args = ap.parse_args(argv)
    _thresholds(args)                 # a bad --ideal-thresholds stops here, before the trace is read
    _controller_options(args)         # ... and bad --controller-options
    if args.windows and not args.full:
        return windows_main(args)

    from datasets import AttributeRules, load_trace, to_job_specs
    from datasets.fleets import philly_fleet, single_cluster_fleet
    from replay.harness import Window
    from replay.report import replay_and_report
    from service.reports.plots import write_plots

    t0 = time.perf_counter()
    res = load_trace(os.path.join(args.traces, "philly_jobs.csv"), "philly")
    specs = to_job_specs(res.rows, AttributeRules(seed=args.seed))
    print(f"trace: {len(specs)} jobs loaded in {time.perf_counter() - t0:.1f} s; seed {args.seed}", flush=True)
    if args.full:
        fleet = philly_fleet(os.path.join(args.traces, "machines_philly.csv"))
        window = Window(None, None, 0)
        schedulers = ["cpsat"]
        where = "whole trace on the Philly fleet (2,490 GPUs)"
    else:
        fleet = single_cluster_fleet(args.nodes, 8)
        window = Window(args.start_day, args.days, args.warmup_days)
        schedulers = [p.strip() for p in args.policies.split(",") if p.strip()]
        where = (f"days {args.start_day:g}-{args.start_day + args.days:g} (warm-up {args.warmup_days:g} d) on "
                 f"{args.nodes} x 8 GPUs")
    print(f"replay: {where}, epoch {args.epoch_s:g} s, planner time limit {args.time_limit:g} s", flush=True)
    rows = []
    for name in schedulers:
        setup = _setup(args, name, args.backfill != "off")
        out = os.path.join(args.out, name) if args.out else None
        s = replay_and_report(specs, fleet, setup, window, out, 
                              plotter=write_plots if out is not None else None, progress=args.progress,
                              label=name)
        s["policy"] = name
        rows.append(s)
        print(f"  {name}: done in {s['wall_s']:.1f} s", flush=True)
    print()
    print(table(rows))
    by = {r["policy"]: r for r in rows}
    print()
    if "cpsat" in by:
        c = by["cpsat"]
        print(f"cpsat wall time: {c['wall_s']:.1f} s, CPU time {c['cpu_s']:.1f} s "
              f"(target <= {'1800' if args.full else '300'} s; {c['plans']} plans, {c['plans_fast_path']} by the fast path)")
        if "fifo" in by and by["fifo"]["avg_jct_s"]:
            print(f"cpsat mean JCT / fifo: {c['avg_jct_s'] / by['fifo']['avg_jct_s']:.3f} (target <= 0.6)")
        if IDEAL in by and by[IDEAL]["avg_jct_s"]:
            print(f"cpsat mean JCT / {IDEAL}: {c['avg_jct_s'] / by[IDEAL]['avg_jct_s']:.3f} (moonshot <= 1.0)")
        if "las" in by and by["las"]["avg_jct_s"]:
            print(f"cpsat mean JCT / las:  {c['avg_jct_s'] / by['las']['avg_jct_s']:.3f} (target <= 1.0)")
        prem = c["sla_attainment"].get("premium")
        print(f"cpsat premium SLA attainment: {prem:.2%} (target >= 99 %)" if prem is not None else "")
    if not args.full and specs:
        _, m_from, m_until = window.bounds_s(specs)
        meas = [s for s in specs if m_from <= s.submit_s < m_until]
        if meas:
            print(f"mean duration of the measured jobs (a floor for any policy's mean JCT): "
                  f"{sum(s.duration_s for s in meas) / len(meas):.0f} s")
    return 0


IDEAL = "las2d-ideal"


def _setup(args: argparse.Namespace, name: str, on: bool):
    """The replay setup for one policy; the ideal reference has no backfill window (it acts on every event)."""
    from replay.harness import ReplaySetup
    from replay.options import DEFAULTS

    scheduler, equal = ("cpsat", True) if name == "cpsat-equal" else (name, False)
    ideal = name == IDEAL
    return ReplaySetup(scheduler=scheduler, epoch_s=args.epoch_s, seed=args.seed, time_limit_s=args.time_limit,
                       equal_priorities=equal, service=args.service or DEFAULTS.service,
                       controller_options=_controller_options(args), replan_every=args.replan_every,
                       backfill_window_s=None if ideal else _backfill_window(args, on),
                       backfill_fit_window_s=_fit_window(args),
                       ideal_thresholds_device_s=_thresholds(args), ideal_order=args.ideal_order)


def _thresholds(args: argparse.Namespace) -> tuple[float, ...]:
    try:
        hours = [float(x) for x in args.ideal_thresholds.split(",") if x.strip()]
    except ValueError:
        hours = [-1.0]
    if not hours or any(not h > 0 for h in hours):
        raise SystemExit(f"--ideal-thresholds: expected positive GPU-hours, comma-separated, got {args.ideal_thresholds!r}")
    return tuple(3600.0 * h for h in hours)


def _controller_options(args: argparse.Namespace) -> dict:
    """--controller-options: a JSON object whose keys are SlaController fields."""
    import json
    from dataclasses import fields

    from replay.controller import SlaController

    try:
        opts = json.loads(args.controller_options)
    except ValueError as exc:
        raise SystemExit(f"--controller-options: not JSON ({exc}): {args.controller_options!r}") from None
    if not isinstance(opts, dict):
        raise SystemExit(f"--controller-options: expected a JSON object, got {args.controller_options!r}")
    known = {f.name for f in fields(SlaController) if f.init} - {"service", "targets", "restart_overhead_s"}
    bad = sorted(set(opts) - known)
    if bad:
        raise SystemExit(f"--controller-options: unknown field {bad[0]!r} (SlaController has {', '.join(sorted(known))})")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()}


def _fit_window(args: argparse.Namespace) -> float | None:
    return None if args.backfill_fit_window < 0 else args.backfill_fit_window


def _backfill_window(args: argparse.Namespace, on: bool) -> float | None:
    from replay.options import DEFAULTS

    return (args.backfill_window or DEFAULTS.backfill_window_s) if on else None


def windows_main(args: argparse.Namespace) -> int:
    """Several windows x policies x backfill on/off, one table, the targets window by window."""
    from datasets import AttributeRules, load_trace, to_job_specs
    from datasets.fleets import single_cluster_fleet

    t0 = time.perf_counter()
    res = load_trace(os.path.join(args.traces, "philly_jobs.csv"), "philly")
    specs = to_job_specs(res.rows, AttributeRules(seed=args.seed))
    print(f"trace: {len(specs)} jobs loaded in {time.perf_counter() - t0:.1f} s; seed {args.seed}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    fleet = single_cluster_fleet(args.nodes, 8)
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.backfill]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    # policy by policy (the first named first, in every window), so a partial run has whole rows to compare
    tasks = [(float(start), name, on) for name in policies for start in args.windows.split(",")
             for on in ([True] if name == IDEAL else modes)]
    _WORK.update(specs=specs, fleet=fleet, args=args)
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            done = pool.imap_unordered(_one, tasks)
            rows = [_printed(s) for s in done]
    else:
        rows = [_printed(_one(t)) for t in tasks]
    order = {t: k for k, t in enumerate(sorted(tasks, key=lambda t: t[0]))}
    rows.sort(key=lambda r: order[(r["window_day"], r["policy"], r["backfill_on"])])
    print()
    print(f"{args.nodes} x 8 GPUs, epoch {args.epoch_s:g} s, planner limit {args.time_limit:g} s, warm-up "
          f"{args.warmup_days:g} d, seed {args.seed}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(windows_table(rows))
    print()
    for start in sorted({r["window_day"] for r in rows}):
        by = {(r["policy"], r["backfill_on"]): r for r in rows if r["window_day"] == start}
        c_on, c_off, las_on = by.get(("cpsat", True)), by.get(("cpsat", False)), by.get(("las", True))
        head = f"days {start:g}-{start + args.days:g}:"
        if c_on and c_off:
            print(f"{head} cpsat above the floor {c_on['avg_jct_above_floor_s']:.0f} s with backfill vs "
                  f"{c_off['avg_jct_above_floor_s']:.0f} s without: {c_on['avg_jct_above_floor_s'] / c_off['avg_jct_above_floor_s']:.2f} "
                  f"(target <= 0.5)")
        if c_on and las_on:
            print(f"{head} cpsat mean JCT / las (both with backfill): {c_on['avg_jct_s'] / las_on['avg_jct_s']:.3f} "
                  f"(target <= 1.0)")
        ideal = by.get((IDEAL, True))
        if c_on and ideal:
            print(f"{head} cpsat (backfill) above the floor {c_on['avg_jct_above_floor_s']:.0f} s vs the ideal 2D-LAS "
                  f"{ideal['avg_jct_above_floor_s']:.0f} s; mean JCT ratio {c_on['avg_jct_s'] / ideal['avg_jct_s']:.3f} "
                  f"(moonshot <= 1.0)")
        if c_on:
            prem = c_on["sla_attainment"].get("premium")
            print(f"{head} cpsat premium SLA {prem:.2%} (target >= 99 %), wall {c_on['wall_s']:.0f} s (target <= 300 s), "
                  f"{c_on['backfill']['plans']} backfill plans, mean {1000 * (c_on['backfill']['planner_s_mean'] or 0):.1f} ms")
    return 0


_WORK: dict = {}      # the trace, fleet and options the replays share (inherited by forked workers)


def _one(task: tuple[float, str, bool]) -> dict:
    """One window x policy x backfill replay; its summary with the three keys the table groups by."""
    from replay.harness import Window
    from replay.report import replay_and_report

    start, name, on = task
    args = _WORK["args"]
    setup = _setup(args, name, on)
    label = f"{name}{'' if on else ' (no backfill)'}"
    out = os.path.join(args.out, f"day{start:g}", name + ("" if on else "-nobackfill")) if args.out else None
    s = replay_and_report(_WORK["specs"], _WORK["fleet"], setup, Window(start, args.days, args.warmup_days), out,
                          plotter=None, progress=args.progress, label=label)
    s.update(policy=name, backfill_on=on, window_day=start, label=label)
    return s


def _printed(s: dict) -> dict:
    lo = s["window_day"]
    print(f"  days {lo:g}-{lo + (s['window_s'][1] - s['window_s'][0]) / 86400:g} {s['label']}: above the floor "
          f"{s['avg_jct_above_floor_s']:.0f} s, wall {s['wall_s']:.1f} s (CPU {s.get('cpu_s') or 0:.0f} s), "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    return s


def windows_table(rows: list[dict]) -> str:
    from service.reports.table import cell, render

    cols = ["days", "policy", "backfill", "mean JCT s", "above floor s", "floor s", "p99 JCT s", "SLA prem", "SLA std",
            "preempt", "wall s", "CPU s"]
    out = [cols]
    for s in rows:
        att = s["sla_attainment"]
        lo = s["window_day"]
        out.append([f"{lo:g}-{lo + (s['window_s'][1] - s['window_s'][0]) / 86400:g}", s["policy"],
                    "ideal" if s["policy"] == IDEAL else "on" if s["backfill_on"] else "off", cell(s["avg_jct_s"]), cell(s["avg_jct_above_floor_s"]),
                    cell(s["avg_duration_s"]), cell(s["p99_jct_s"]), cell(att.get("premium"), "{:.2%}"),
                    cell(att.get("standard"), "{:.1%}"), str(s["preemptions"]), cell(s["wall_s"], "{:.1f}"),
                    cell(s.get("cpu_s"), "{:.0f}")])
    return render(out)


def table(rows: list[dict]) -> str:
    from service.reports.table import cell, render
    cols = ["policy", "jobs", "done", "mean JCT s", "p50 JCT s", "p99 JCT s", "mean queue s", "util",
            "SLA prem", "SLA std", "preempt", "migrate", "resize", "dev-h lost", "plans", "plan p50 s", "plan p99 s",
            "fallback", "wall s", "cpu s"]
    out = [cols]
    for s in rows:
        att = s["sla_attainment"]
        out.append([s["policy"], str(s["jobs_submitted"]), str(s["jobs_completed"]), cell(s["avg_jct_s"]),
                    cell(s["p50_jct_s"]), cell(s["p99_jct_s"]), cell(s["avg_queue_s"]), cell(s["utilization"], "{:.1%}"),
                    cell(att.get("premium"), "{:.2%}"), cell(att.get("standard"), "{:.1%}"), str(s["preemptions"]),
                    str(s["migrations"]), str(s["resizes"]), cell(s["device_hours_lost"]), str(s["plans"]),
                    cell(s["planner_s_p50"], "{:.3f}"), cell(s["planner_s_p99"], "{:.3f}"),
                    cell(s["planner_fallback_rate"], "{:.1%}"), cell(s["wall_s"], "{:.1f}"), cell(s.get("cpu_s"), "{:.1f}")])
    return render(out)


if __name__ == "__main__":
    sys.exit(main())
