"""Where cpsat's gang jobs wait: each waiting gang job's time split by what kept it off a node.

    .venv/bin/python bench/gang_wait.py --windows 30,20 [--nodes 80] [--out runs/gw]

Replays a Philly window like `bench/replay_philly.py` (cpsat, backfill on, 80 x 8 GPUs, 300 s epochs,
planner limit 0.5 s, three warm-up days, seed 0) and, before every step the executor runs, classifies
each waiting job whose replica needs several devices (`devices_per_replica` > 1) by the fleet as it
stands (a non-clairvoyant view: values from the controller's last priorities, time held so far):

- `fits`: enough nodes have a replica's devices free now (it waits for a batch or a plan's choice);
- `frag`: enough devices are free in total, but not on whole nodes;
- `clear_ok`: the planner's own trade (`reservation._clearing`, margin 1.0, pauses priced) would
  clear nodes for it under every rule in force (clear_factor, keep_gangs): what stops it is that
  clearing happens at full plans only, and for the head (`head`) or behind it (`behind`);
- `clear_cf`, `clear_kg`, `clear_both`: the trade pays, but only with clear_factor, keep_gangs, or
  both lifted;
- `full`: no clearing pays even without those rules: the fleet is full of work worth more.

Figures are seconds of the
mean over all measured jobs (so they add up to the class's share of the mean above the floor), per
tier x GPUs class. A measurement tool, not a scheduler: nothing it computes reaches the plans.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRACES = ROOT.parent / "shared" / "traces"
SHARE = 30.0 / 300.0        # the start / checkpoint pause's share of an epoch (30 s of 300 s)


def classify(state, executor, scheduler, capacity: dict[str, int], down, opts: dict) -> dict[str, str]:
    """Each waiting gang job's category (see the module docstring) for the fleet as it stands."""
    from models import TierWeights

    tw = TierWeights()
    w = {"premium": tw.premium, "standard": tw.standard, "basic": tw.basic}
    placements = executor.placements()
    free = {n: d for n, d in capacity.items() if n not in down}
    occ: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for jid, p in placements.items():
        dpr = state.jobs[jid].arrival.job.devices_per_replica
        for n, k in p.nodes.items():
            free[n] -= k * dpr
            occ[n].append((jid, k * dpr))
    heads = set(getattr(scheduler, "heads", ()))
    cf = opts.get("clear_factor")
    keep = opts.get("keep_gangs", False)
    out = {}
    for jid in state.active:
        st = state.jobs[jid]
        job = st.arrival.job
        d = job.devices_per_replica
        if st.status != "pending" or d < 2:
            continue
        m = job.replicas.min
        whole = sum(1 for n, f in free.items() if f >= d)
        if whole >= m:
            out[jid] = "fits"
            continue
        if sum(free.values()) >= m * d:
            cat = "frag"
        else:
            gain = w[job.tier] * st.priority * d * m * (1 - SHARE)

            def by_cf(o, st=st) -> bool:
                return cf is not None and o.run_s <= cf * st.run_s

            def by_kg(o, job=job) -> bool:
                return keep and o.arrival.job.devices_per_replica > 1 and w[o.arrival.job.tier] >= w[job.tier]

            def pays(spare, d=d, m=m, gain=gain) -> bool:
                return _pays(state, placements, free, occ, w, d, m, gain, spare)

            if pays(lambda o: by_cf(o) or by_kg(o)):
                cat = "clear_ok_" + ("head" if jid in heads else "behind")
            elif not pays(lambda o: False):
                cat = "full"
            elif pays(by_kg):
                cat = "clear_cf"
            elif pays(by_cf):
                cat = "clear_kg"
            else:
                cat = "clear_both"
        out[jid] = cat
    return out


def _pays(state, placements, free, occ, w, d: int, m: int, gain: float, spare) -> bool:
    """Whether clearing `m` nodes for a replica of `d` devices each (the cheapest occupants per device
    first, never premium ones nor those `spare` keeps) costs, with the victims' pauses, less than `gain`."""
    costs = []
    for n, f in free.items():
        need = d - f
        cost = 0.0
        for o, k in sorted(occ.get(n, ()), key=lambda ok: w[state.jobs[ok[0]].arrival.job.tier]
                           * state.jobs[ok[0]].priority):
            if need <= 0:
                break
            ost = state.jobs[o]
            if ost.arrival.job.tier == "premium" or spare(ost):
                continue
            need -= k
            cost += w[ost.arrival.job.tier] * ost.priority * placements[o].replicas * ost.arrival.job.devices_per_replica
        if need <= 0:
            costs.append(cost)
    return len(costs) >= m and gain > sum(sorted(costs)[:m]) * (1 + SHARE)


def run_window(specs, fleet, start: float, args) -> dict:
    from executor import loop
    from executor.schedulers.cpsat import event_options
    from replay import harness
    from replay.harness import ReplaySetup, Window
    from replay.metrics import summarize
    from replay.options import DEFAULTS

    window = Window(start, args.days, args.warmup_days)
    made = {}
    real_make = harness.make_scheduler

    def make(name, **kw):
        made["s"] = real_make(name, **kw)
        return made["s"]

    acc: dict[tuple[str, str], float] = collections.defaultdict(float)
    per_job: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    real_adv = loop._advance

    def adv(executor, state, rec, now, dt, cap, down):
        cats = classify(state, executor, made.get("s"), cap, down, event_options(True))
        for jid, c in cats.items():
            per_job[jid][c] += dt
        return real_adv(executor, state, rec, now, dt, cap, down)

    harness.make_scheduler, loop._advance = make, adv
    try:
        setup = ReplaySetup(scheduler="cpsat", epoch_s=300, seed=0, time_limit_s=0.5, replan_every=3,
                            backfill_window_s=DEFAULTS.backfill_window_s, backfill_fit_window_s=5.0)
        run = harness.run_replay(specs, fleet, setup, window)
    finally:
        harness.make_scheduler, loop._advance = real_make, real_adv
    s = summarize(run, 0.0)
    measured = run.measured
    n = len(measured)
    for jid, cats in per_job.items():
        if jid not in measured:
            continue
        j = run.specs[jid]
        cls = f"{j.tier} {j.num_gpus if j.num_gpus <= 8 else '>8'}-GPU"
        for c, t in cats.items():
            acc[(cls, c)] += t / n
    return {"window": start, "measured": n, "summary": s, "by": {f"{k[0]}|{k[1]}": v for k, v in acc.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default=str(TRACES))
    ap.add_argument("--windows", default="30")
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--warmup-days", type=float, default=3)
    ap.add_argument("--nodes", type=int, default=80)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from datasets import AttributeRules, load_trace, to_job_specs
    from datasets.fleets import single_cluster_fleet

    res = load_trace(os.path.join(args.traces, "philly_jobs.csv"), "philly")
    specs = to_job_specs(res.rows, AttributeRules(seed=0))
    fleet = single_cluster_fleet(args.nodes, 8)
    for start in (float(x) for x in args.windows.split(",")):
        r = run_window(specs, fleet, start, args)
        sm = r["summary"]
        print(f"days {start:g}-{start + args.days:g}: {r['measured']} measured jobs, above the floor "
              f"{sm['avg_jct_above_floor_s']:.1f} s, preemptions {sm['preemptions']}; load {os.getloadavg()[0]:.1f}")
        by: dict[str, dict[str, float]] = collections.defaultdict(dict)
        for k, v in r["by"].items():
            cls, cat = k.split("|", 1)
            by[cls][cat] = v
        for cls in sorted(by):
            cats = by[cls]
            tot = sum(cats.values())
            parts = ", ".join(f"{c} {v:.1f}" for c, v in sorted(cats.items(), key=lambda kv: -kv[1]))
            print(f"  {cls}: waiting {tot:.1f} s of the mean: {parts}")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, f"day{start:g}.json"), "w") as f:
                json.dump(r, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
