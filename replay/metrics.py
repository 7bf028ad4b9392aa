"""Replay metrics: `summary.json`, the per-epoch CSV and the per-job CSV.

Definitions (the measured jobs are those submitted inside the window):
- JCT = completion - submission; the floor (`avg_duration_s`) = the mean trace duration of the same
  completed measured jobs, which no policy can beat (no job runs faster than its trace), and
  `avg_jct_above_floor_s` = mean JCT - floor: the share of the wait that is the scheduler's (overall
  and per tier in `jct_by_tier`); queue = the time a job was active without devices (from its
  submission, including the wait for the first epoch and any time preempted).
- SLA ratio (`replay.sla`) = `duration_s / max(duration_s, completion - submit - epoch_s -
  restart_overhead_s)`: the wait for the first epoch and one start are forgiven. A tier's attainment
  is the share of its completed measured jobs at or above its target (`replay.sla`'s defaults); a measured
  job that never finished counts as missing its target.
- utilization = busy device-seconds / up device-seconds over the window's epochs `[start, end)`
  (busy: a job doing work; pauses are not busy); `utilization_replay` over the whole replay.
- preemptions, migrations, resizes, moves, starts: actions applied from the window's start on.
- device_hours_lost: devices held through pauses (start, resize, move, migrate) plus the devices of
  preempted jobs times their charged pause, from the window's start on.
- rejected_by_reason: measured jobs the replay rejected at arrival (no pool of the fleet could ever hold
  them), by reason; trace_skipped: the loader's skipped rows by reason (filled by the caller).
- held_share_by_accelerator: per accelerator type, device-seconds held (busy or pausing) over its
  devices during the window (`replay.pools`; per epoch in utilization.png); held_share_gpus: the same over
  the whole fleet with each device weighted by the share of a GPU it is (a 1/2 slice counts half).
- jobs.csv `accelerators` / `clusters`: every type / cluster the job ran on over its life, `;`-separated.
- planner_s_p50/p99 over the epochs that planned; planner_fallback_rate = share of plans whose status
  is `fallback` (epoch plans). With backfill on, `backfill` holds the window and the backfill plans'
  count and seconds (mean, p99, total).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter

from datasets.files import write_atomic
from models import Policy
from replay.harness import ReplayRun
from replay.pools import held_share, held_share_gpus, pool_devices, pool_rows
from replay.sla import sla_ratio

TIER_ORDER = ("premium", "standard", "basic")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank-interpolated percentile (numpy's 'linear'); None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def job_rows(run: ReplayRun) -> list[dict]:
    """One row per replayed job (measured or warm-up)."""
    T = run.setup.epoch_s
    restart = (run.setup.contract_policy or Policy()).restart_overhead_s
    rows = []
    for jid, spec in run.specs.items():
        st = run.state.jobs.get(jid)
        status = st.status if st is not None else "not_arrived"
        fin = st.finish_s if st is not None and status == "done" else None
        rows.append({
            "job_id": jid, "measured": jid in run.measured, "tier": spec.tier, "tenant": spec.tenant,
            "num_gpus": spec.num_gpus, "submit_s": spec.submit_s, "duration_s": spec.duration_s, "status": status,
            "first_start_s": st.first_start_s if st else None, "finish_s": fin,
            "jct_s": fin - spec.submit_s if fin is not None else None,
            "queue_s": st.wait_s if st else None,
            "sla_ratio": sla_ratio(spec.duration_s, fin - spec.submit_s, T, restart) if fin is not None else None,
            "preemptions": st.actions.get("preempt", 0) if st else 0,
            "migrations": st.actions.get("migrate", 0) if st else 0,
            "resizes": st.actions.get("resize", 0) if st else 0,
            "reject_reason": st.reject_reason if st else "",
            "accelerators": ";".join(dict.fromkeys(a for _, a in st.placed_on)) if st else "",
            "clusters": ";".join(dict.fromkeys(c for c, _ in st.placed_on)) if st else "",
        })
    return rows


def summarize(run: ReplayRun, wall_s: float) -> dict:
    """The summary.json object (see the module docstring for each figure's definition)."""
    rows = [r for r in job_rows(run) if r["measured"]]
    done = [r for r in rows if r["status"] == "done"]
    jct = [r["jct_s"] for r in done]
    floor = _mean([r["duration_s"] for r in done])
    targets = run.setup.sla_targets
    after = [r for r in run.records if r.t_s >= run.measure_from_s]
    window = [r for r in after if r.t_s < run.measure_until_s]
    actions: Counter[str] = Counter()
    for r in after:
        actions.update(r.actions)
    planned = [r for r in run.records if r.planned]
    ps = [r.planner_s for r in planned]
    cap_w = sum(r.capacity_device_s for r in window)
    cap_all = sum(r.capacity_device_s for r in run.records)
    finish = [r["finish_s"] for r in done]
    by_tier = {}
    attain = {}
    for tier in TIER_ORDER:
        tr = [r for r in rows if r["tier"] == tier]
        td = [r for r in tr if r["status"] == "done"]
        tj = [r["jct_s"] for r in td]
        floor_t = _mean([r["duration_s"] for r in td])
        by_tier[tier] = {"jobs": len(tr), "completed": len(td), "avg_jct_s": _mean(tj),
                         "avg_duration_s": floor_t, "avg_jct_above_floor_s": _above(_mean(tj), floor_t),
                         "p50_jct_s": percentile(tj, 50),
                         "p99_jct_s": percentile(tj, 99), "avg_queue_s": _mean([r["queue_s"] for r in td]),
                         "avg_sla_ratio": _mean([r["sla_ratio"] for r in td])}
        if tier in targets:
            ok = sum(1 for r in td if r["sla_ratio"] >= targets[tier] - 1e-12)
            attain[tier] = ok / len(tr) if tr else None
    lost = sum(r.paused_device_s + r.preempt_lost_device_s for r in after)
    st = run.state
    extra = {}
    if run.setup.backfill_window_s is not None:
        bs = [x for r in run.records for x in r.backfill_s]
        extra["backfill"] = {"window_s": run.setup.backfill_window_s, "plans": len(bs),
                             "planner_s_mean": _mean(bs), "planner_s_p99": percentile(bs, 99),
                             "planner_s_total": sum(bs)}
    return {
        "policy": run.setup.scheduler + ("-equal" if run.setup.equal_priorities and run.setup.scheduler == "cpsat" else ""),
        "seed": run.setup.seed, "epoch_s": run.setup.epoch_s, "time_limit_s": run.setup.time_limit_s,
        "window_s": [run.measure_from_s, run.measure_until_s if math.isfinite(run.measure_until_s) else None],
        "jobs_submitted": len(rows),
        "jobs_completed": len(done),
        "jobs_rejected": sum(1 for r in rows if r["status"] == "rejected"),
        "jobs_unfinished": sum(1 for r in rows if r["status"] in ("pending", "running", "not_arrived")),
        "rejected_by_reason": dict(Counter(r["reject_reason"] for r in rows if r["status"] == "rejected").most_common()),
        "trace_skipped": {},
        "avg_jct_s": _mean(jct), "avg_duration_s": floor, "avg_jct_above_floor_s": _above(_mean(jct), floor),
        "p50_jct_s": percentile(jct, 50), "p99_jct_s": percentile(jct, 99),
        "avg_queue_s": _mean([r["queue_s"] for r in done]),
        "makespan_s": (max(finish) - run.measure_from_s) if finish else None,
        "utilization": (sum(r.busy_device_s for r in window) / cap_w) if cap_w else None,
        "utilization_replay": (sum(r.busy_device_s for r in run.records) / cap_all) if cap_all else None,
        "held_share_by_accelerator": held_share(run.records, getattr(run.executor, "held_by_type", {}),
                                                pool_devices(run.fleet) if run.fleet else {}, run.measure_from_s, run.measure_until_s),
        "held_share_gpus": held_share_gpus(run.records, getattr(run.executor, "held_by_type", {}),
                                           pool_devices(run.fleet) if run.fleet else {}, run.measure_from_s,
                                           run.measure_until_s),
        "sla_targets": dict(targets),
        "sla_attainment": attain,
        "jct_by_tier": by_tier,
        "preemptions": actions.get("preempt", 0), "migrations": actions.get("migrate", 0),
        "resizes": actions.get("resize", 0), "moves": actions.get("move", 0), "starts": actions.get("start", 0),
        "device_hours_lost": lost / 3600.0,
        "plans": len(planned), "epochs": len(run.records),
        "plans_fast_path": getattr(run.scheduler, "fast_plans", 0),
        "planner_s_p50": percentile(ps, 50), "planner_s_p99": percentile(ps, 99),
        "planner_s_total": sum(ps),
        "planner_fallback_rate": (sum(1 for r in planned if r.plan_status == "fallback") / len(planned)) if planned else 0.0,
        "plan_status": dict(Counter(r.plan_status for r in planned)),
        "replay_end_s": st.now_s,
        "wall_s": wall_s,
        **extra,
    }


EPOCH_COLUMNS = ("t_s", "day", "dt_s", "planned", "planner_s", "plan_status", "arrivals", "completions", "running",
                 "pending", "down_nodes", "starts", "preemptions", "resizes", "moves", "migrations", "busy_device_s",
                 "paused_device_s", "idle_device_s", "capacity_device_s", "utilization")


def epoch_rows(run: ReplayRun) -> list[list]:
    out = []
    for r in run.records:
        a = r.actions
        out.append([r.t_s, round(r.t_s / 86400, 5), r.dt_s, int(r.planned), round(r.planner_s, 5), r.plan_status,
                    r.arrivals, r.completions, r.running, r.pending, r.down_nodes, a.get("start", 0),
                    a.get("preempt", 0), a.get("resize", 0), a.get("move", 0), a.get("migrate", 0),
                    r.busy_device_s, r.paused_device_s, r.idle_device_s, r.capacity_device_s,
                    round(r.busy_device_s / r.capacity_device_s, 6) if r.capacity_device_s else ""])
    return out


def write_outputs(run: ReplayRun, summary: dict, out_dir: str) -> list[str]:
    """epochs.csv, jobs.csv, then summary.json under `out_dir` (each written atomically; the summary last, so
    its presence means the run's outputs are complete)."""
    return [*write_tables(run, out_dir), write_summary(summary, out_dir)]


def write_summary(summary: dict, out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    p = os.path.join(out_dir, "summary.json")
    write_atomic(p, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return p


def write_tables(run: ReplayRun, out_dir: str) -> list[str]:
    """epochs.csv and jobs.csv under `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EPOCH_COLUMNS)
    w.writerows(epoch_rows(run))
    p = os.path.join(out_dir, "epochs.csv")
    write_atomic(p, buf.getvalue())
    paths.append(p)
    rows = job_rows(run)
    buf = io.StringIO()
    if rows:
        w2 = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w2.writeheader()
        w2.writerows(rows)
    p = os.path.join(out_dir, "jobs.csv")
    write_atomic(p, buf.getvalue())
    paths.append(p)
    return paths


def run_pool_rows(run: ReplayRun) -> list[list]:
    """Device-seconds held per accelerator type per epoch (`replay.pools.POOL_COLUMNS`), for the plots."""
    return pool_rows(run.records, getattr(run.executor, "held_by_type", {}), pool_devices(run.fleet) if run.fleet else {})


def _above(jct: float | None, floor: float | None) -> float | None:
    return None if jct is None or floor is None else jct - floor


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
