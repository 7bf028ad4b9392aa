"""Who preempts the gang jobs: one Philly window replayed with a log of every preemption of a job of
several GPUs, the jobs that started on its nodes in the same epoch, and each victim's wait until it
ran again. Issue 11's analysis tool: on days 20-27 the waits of preempted basic 8-GPU jobs after their
first start were 312 of cpsat's 474.5 s above the floor, and which rule to change depends on who takes
their nodes (docs/notes/work-conserving-replay.md, "2026-12-03 (issue 11, not closed)").

    .venv/bin/python bench/preemptions.py --start-day 20 [--out runs/pre20.jsonl] [--min-gpus 2]

Preemptions happen only at full plans (a backfill plan never stops a running job), at most one per
epoch, so the log compares what runs after each epoch with what ran after the one before: a job that ran
and now waits was preempted (or lost its nodes); a job running now on its old nodes that was not
running there before took them. Deterministic, as the replay is.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
TRACES = HERE.parent.parent / "shared" / "traces"


class PreemptionLog:
    """A loop observer: each epoch's preemptions of jobs with at least `min_gpus` GPUs."""

    def __init__(self, min_gpus: int):
        self.min_gpus = min_gpus
        self.before: dict[str, tuple[str, dict[str, int], int]] = {}   # job -> (tier, nodes, GPUs) last epoch
        self.events: list[dict] = []
        self.open: dict[str, dict] = {}      # victim -> its latest event, until it runs again

    def __call__(self, rec, state) -> None:
        now: dict[str, tuple[str, dict[str, int], int]] = {}
        for jid in state.active:
            st = state.jobs[jid]
            if st.status == "running" and st.placement is not None:
                job = st.arrival.job
                now[jid] = (job.tier, dict(st.placement.nodes), st.placement.replicas * job.devices_per_replica)
        for jid, ev in list(self.open.items()):
            if jid in now:
                ev["waited_s"] = state.now_s - ev["t_s"]
                del self.open[jid]
        for jid, (tier, nodes, gpus) in self.before.items():
            st = state.jobs.get(jid)
            if gpus < self.min_gpus or jid in now or st is None or st.status != "pending":
                continue
            took = [{"job": k, "tier": t, "gpus": g, "priority": round(state.jobs[k].priority, 4)}
                    for k, (t, n, g) in now.items()
                    if set(n) & set(nodes) and not (k in self.before and set(self.before[k][1]) & set(nodes))]
            ev = {"t_s": state.now_s, "day": round(state.now_s / 86400, 3), "job": jid, "tier": tier, "gpus": gpus,
                  "priority": round(st.priority, 4), "held_s": round(st.run_s), "nodes": sorted(nodes), "took": took,
                  "waited_s": None}
            self.events.append(ev)
            self.open[jid] = ev
        self.before = now


def summary(events: list[dict]) -> str:
    """Who took the victims' nodes, by the victims' tier and size, and the waits that followed."""
    lines = []
    by: dict[tuple[str, int], list[dict]] = collections.defaultdict(list)
    for ev in events:
        by[(ev["tier"], ev["gpus"])].append(ev)
    lines.append(f"{'victims':18} {'n':>5} {'mean wait h':>11} {'never ran again':>15}  taken by (tier x GPUs: starts)")
    for (tier, gpus), evs in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        waits = [e["waited_s"] for e in evs if e["waited_s"] is not None]
        takers = collections.Counter(f"{t['tier']} x{t['gpus']}" for e in evs for t in e["took"])
        idle = sum(1 for e in evs if not e["took"])
        mean = f"{sum(waits) / len(waits) / 3600:.1f}" if waits else "-"
        top = ", ".join(f"{k}: {v}" for k, v in takers.most_common(5))
        lines.append(f"{tier + ' x' + str(gpus):18} {len(evs):5} {mean:>11} {len(evs) - len(waits):15}  {top}"
                     f"{'; nothing started on its nodes: ' + str(idle) if idle else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", default=str(TRACES))
    ap.add_argument("--start-day", type=float, default=20)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--warmup-days", type=float, default=3)
    ap.add_argument("--nodes", type=int, default=80)
    ap.add_argument("--policy", default="cpsat")
    ap.add_argument("--backfill", choices=("on", "off"), default="on")
    ap.add_argument("--min-gpus", type=int, default=2, help="log the preemptions of jobs of at least this many GPUs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write every event here as JSON lines")
    args = ap.parse_args(argv)
    if args.min_gpus < 1 or args.nodes < 1 or args.days <= 0 or args.warmup_days < 0:
        raise SystemExit("--min-gpus and --nodes must be >= 1, --days > 0, --warmup-days >= 0")

    from datasets import AttributeRules, load_trace, to_job_specs
    from datasets.fleets import single_cluster_fleet
    from replay.harness import ReplaySetup, Window, run_replay
    from replay.metrics import summarize
    from replay.options import DEFAULTS

    t0 = time.perf_counter()
    res = load_trace(os.path.join(args.traces, "philly_jobs.csv"), "philly")
    specs = to_job_specs(res.rows, AttributeRules(seed=args.seed))
    setup = ReplaySetup(scheduler=args.policy, epoch_s=300, seed=args.seed, time_limit_s=0.5,
                        backfill_window_s=DEFAULTS.backfill_window_s if args.backfill == "on" else None)
    log = PreemptionLog(args.min_gpus)
    run = run_replay(specs, single_cluster_fleet(args.nodes, 8), setup,
                     Window(args.start_day, args.days, args.warmup_days), [log])
    s = summarize(run, time.perf_counter() - t0)
    print(f"days {args.start_day:g}-{args.start_day + args.days:g} (warm-up {args.warmup_days:g} d), {args.nodes} x 8 "
          f"GPUs, {args.policy}, backfill {args.backfill}, seed {args.seed}: mean JCT above the floor "
          f"{s['avg_jct_above_floor_s']:.1f} s (as bench/replay_philly.py); {len(log.events)} preemptions of jobs "
          f"of {args.min_gpus}+ GPUs; {time.perf_counter() - t0:.0f} s")
    print(summary(log.events))
    if args.out:
        pathlib.Path(args.out).write_text("".join(json.dumps(e) + "\n" for e in log.events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
