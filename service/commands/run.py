"""`meridian run FLEET.json JOBS.json`: the live loop. Every epoch the planner plans the current jobs on a
local fleet of CPU slots and the torch executor applies the plan to real training processes (start,
preempt, resize, move, migrate through checkpoint/resume), until every job has finished. Prints each
epoch's plan and, at the end, the measured pauses next to the ones contract v1 modelled.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="plan and run real (local, CPU) training jobs until they finish")
    p.add_argument("fleet", help="FLEET.json: the contract's fleet (or a request without jobs: fleet, epoch_s, "
                   "policy, quotas)")
    p.add_argument("jobs", help="JOBS.json: contract jobs, each with submit_s and a train spec")
    p.add_argument("--workdir", default=None, help="checkpoints (per region), worker logs (default: a temporary "
                   "folder, removed afterwards)")
    p.add_argument("--epoch-s", type=float, default=None, help="wall-clock seconds per epoch (default: the "
                   "fleet file's epoch_s)")
    p.add_argument("--time-limit", type=float, default=2.0, help="the planner's seconds per epoch (default 2)")
    p.add_argument("--greedy", action="store_true", help="the greedy planner alone")
    p.add_argument("--grace-s", type=float, default=30.0, help="SIGTERM -> SIGKILL grace period (default 30)")
    p.add_argument("--max-epochs", type=int, default=60, help="safety stop (default 60)")
    p.add_argument("--json", default=None, help="also write the pause table and per-job results here (atomically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from service.cli import UsageError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("needs torch: .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e '.[executor]'") from None
    from executor.live import format_table, load_live_input, pause_rows, read_json_file
    from executor.loop import Arrival, LoopConfig, run_loop
    from executor.policies.cpsat import CpsatScheduler
    from executor.torch_backend import TorchExecutor

    for name in ("time_limit", "grace_s"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.epoch_s is not None and not args.epoch_s > 0:
        raise UsageError(f"--epoch-s must be > 0, got {args.epoch_s}")
    if args.max_epochs < 1:
        raise UsageError(f"--max-epochs must be >= 1, got {args.max_epochs}")
    live = load_live_input(read_json_file(args.fleet, "fleet", UsageError),
                           read_json_file(args.jobs, "jobs", UsageError))
    req = live.request
    epoch_s = args.epoch_s or req.epoch_s
    policy = req.policy.model_copy(update={"time_limit_s": args.time_limit, "deterministic": True})
    config = LoopConfig(fleet=req.fleet, epoch_s=epoch_s, policy=policy, quotas=req.quotas, start_s=0.0,
                        max_s=args.max_epochs * epoch_s)
    own = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="meridian-run-")) if own else Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    region_of = {c.name: c.region for c in req.fleet.clusters}
    executor = TorchExecutor(work, grace_s=args.grace_s)
    first_region = req.fleet.regions[0].name
    for job in req.jobs:
        home = job.data_region or (job.regions[0] if job.regions else first_region)
        executor.add_job(job.id, live.train[job.id], home)
    arrivals = [Arrival(live.submit_s[j.id], j, float(live.train[j.id].steps * live.train[j.id].world_size))
                for j in req.jobs]
    applied: list = []
    seen = 0

    def observe(rec, state) -> None:
        nonlocal seen
        new = executor.applied[seen:]
        for a, workers in zip(new, executor.applied_workers[seen:], strict=True):
            applied.append((rec.t_s, a, workers))
        seen = len(executor.applied)
        # Measured checkpoint sizes are what the next request carries as checkpoint_gb.
        for jid, gb in executor.checkpoint_gb().items():
            if jid in state.jobs:
                state.jobs[jid].arrival.job.checkpoint_gb = gb
        running = ", ".join(f"{j.id}x{j.placement.replicas}@{executor.steps_done().get(j.id, 0)}"
                            for j in state.running()) or "-"
        acts = ", ".join(f"{a.kind} {a.job}" for a in new) or "no change"
        print(f"t={rec.t_s:6.0f}s  {acts:<48} running: {running}  pending: {rec.pending}  "
              f"done: {sum(1 for s in state.jobs.values() if s.status == 'done')}", file=sys.stderr, flush=True)

    print(f"meridian run: {len(req.jobs)} jobs on {sum(g.count * g.devices for c in req.fleet.clusters for g in c.node_groups)} "
          f"slots, epoch {epoch_s:g}s, work in {work}", file=sys.stderr)
    try:
        state = run_loop(executor, arrivals, CpsatScheduler(replan_every=1, greedy=args.greedy), config,
                         observers=[observe])
    finally:
        executor.close()
    rows = pause_rows(applied)
    print(format_table(rows))
    done = {j: s for j, s in state.jobs.items() if s.status == "done"}
    steps = executor.steps_done()
    for jid, s in state.jobs.items():
        print(f"{jid}: {s.status}, {steps.get(jid, 0)}/{live.train[jid].steps} steps, "
              f"actions {dict(s.actions)}")
    kinds = {r["kind"] for r in rows}
    print(f"{len(done)}/{len(state.jobs)} jobs finished; actions: "
          + ", ".join(f"{k} {sum(1 for r in rows if r['kind'] == k)}" for k in sorted(kinds)))
    if args.json:
        from service.commands.plan import write_atomic

        write_atomic(args.json, json.dumps({"pauses": rows, "jobs": {
            j: {"status": s.status, "steps": steps.get(j, 0), "actions": dict(s.actions),
                "finish_s": s.finish_s, "first_start_s": s.first_start_s} for j, s in state.jobs.items()},
            "regions": region_of}, indent=1) + "\n")
    if own:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if len(done) == len(state.jobs) else 1
