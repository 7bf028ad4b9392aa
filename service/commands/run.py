"""`meridian run FLEET.json JOBS.json`: the live loop. Every epoch the planner plans the current jobs on a
local fleet of CPU slots and the torch executor applies the plan to real training processes (start,
preempt, resize, move, migrate through checkpoint/resume), until every job has finished. Prints each
epoch's plan and, at the end, the measured pauses next to the ones contract v1 modelled.
"""

from __future__ import annotations

import argparse
import json
import sys

MIN_EPOCH_S = 1.0          # a live epoch plans and applies real processes: shorter would only spin
MAX_EPOCHS = 100_000


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
    p.add_argument("--no-backfill", dest="backfill", action="store_false",
                   help="act on the epoch grid alone (no backfill plans between epochs)")
    p.add_argument("--backfill-window", type=float, default=2.0,
                   help="between epochs, poll the workers and batch arrivals and completions this many "
                        "wall-clock seconds before a backfill plan (default 2)")
    p.add_argument("--backend", choices=("torch", "ray"), default="torch",
                   help="torch: torchrun workers on this host (default); ray: Ray actors on the fleet's nodes")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="--backend ray: join this Ray cluster (each fleet node a Ray node advertising "
                        "meridian_node_<name>); default: a local cluster of one Ray node per fleet node")
    p.add_argument("--checkpoint-storage", action="append", default=[], metavar="REGION=LOCATION",
                   help="--backend ray: where REGION's checkpoints live, a folder every node mounts or an fsspec "
                        "URL (file:///mnt/ckpt, s3://bucket/prefix with s3fs installed, ...); repeat per region "
                        "(default: WORKDIR/storage/REGION)")
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
    from datasets.files import (
        InputError,
        check_not_an_input,
        check_writable_dir,
        check_writable_file,
        read_json,
    )
    from executor.live import load_live_input, run_live
    from executor.ray_cluster import RayNodesMissing  # (imports no Ray)
    from executor.train.checkpoint import CheckpointError, NoIntactCheckpoint, StaleCheckpoint
    from models.limits import MAX_SECONDS, MAX_TIME_LIMIT_S

    for name, top in (("time_limit", MAX_TIME_LIMIT_S), ("grace_s", 3600.0), ("backfill_window", MAX_SECONDS)):
        if not 0 < getattr(args, name) <= top:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0 and at most {top:g}, got {getattr(args, name)}")
    if args.epoch_s is not None and not MIN_EPOCH_S <= args.epoch_s <= MAX_SECONDS:
        raise UsageError(f"--epoch-s must be between {MIN_EPOCH_S:g} and {MAX_SECONDS:g} s, got {args.epoch_s}")
    if not 1 <= args.max_epochs <= MAX_EPOCHS:
        raise UsageError(f"--max-epochs must be between 1 and {MAX_EPOCHS}, got {args.max_epochs}")
    try:
        fleet_doc, jobs_doc = read_json(args.fleet, "fleet"), read_json(args.jobs, "jobs")
        if args.json is not None:           # before the run: its results must have somewhere to go
            if not args.json:
                raise InputError("--json: must not be empty (a file for the pause table and the results)")
            try:
                check_writable_file(args.json)
                check_not_an_input(args.json, [args.fleet, args.jobs])
            except InputError as exc:
                raise InputError(f"--json {args.json}: {exc}") from None
        if args.workdir is not None:
            check_writable_dir(args.workdir)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    live = load_live_input(fleet_doc, jobs_doc)
    if args.epoch_s is None and live.request.epoch_s < MIN_EPOCH_S:
        raise UsageError(f"{args.fleet}: epoch_s must be at least {MIN_EPOCH_S:g} s for a live run, "
                         f"got {live.request.epoch_s}")
    if args.ray is not None and args.backend != "ray":
        raise UsageError("--ray ADDRESS needs --backend ray")
    locations = storage_locations(args.checkpoint_storage, [r.name for r in live.request.fleet.regions], UsageError)
    if locations and args.backend != "ray":
        raise UsageError("--checkpoint-storage needs --backend ray (the torch backend keeps them in WORKDIR/storage)")
    own = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="meridian-run-")) if own else Path(args.workdir)
    try:
        with _backend(args, live, UsageError):
            res = run_live(live, work, epoch_s=args.epoch_s, time_limit_s=args.time_limit, greedy=args.greedy,
                           grace_s=args.grace_s, max_epochs=args.max_epochs,
                           backfill_window_s=args.backfill_window if args.backfill else None, backend=args.backend,
                           locations=locations)
    except (RayNodesMissing, StaleCheckpoint, NoIntactCheckpoint) as exc:  # a fleet node the cluster lacks, a
        raise UsageError(str(exc)) from None    # job's checkpoints in --workdir of another spec or all damaged
    except CheckpointError as exc:      # mid-run: a job's checkpoints can be neither written nor resumed from
        print(f"meridian run: {exc}", file=sys.stderr)
        return 1
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    print(pause_table(res.rows))
    jobs = res.state.jobs
    for jid, s in jobs.items():
        print(f"{jid}: {s.status}, {res.steps.get(jid, 0)}/{live.train[jid].steps} steps, actions {dict(s.actions)}")
    done = sum(1 for s in jobs.values() if s.status == "done")
    kinds = sorted({r["kind"] for r in res.rows})
    print(f"{done}/{len(jobs)} jobs finished; actions: "
          + ", ".join(f"{k} {sum(1 for r in res.rows if r['kind'] == k)}" for k in kinds))
    if args.json:
        from datasets.files import write_atomic

        write_atomic(args.json, json.dumps({"pauses": res.rows, "jobs": {
            j: {"status": s.status, "steps": res.steps.get(j, 0), "actions": dict(s.actions),
                "first_start_s": s.first_start_s, "finish_s": s.finish_s} for j, s in jobs.items()}},
            indent=1) + "\n")
    return 0 if done == len(jobs) else 1


def storage_locations(items: list[str], regions: list[str], usage_error: type[Exception]) -> dict[str, str]:
    """`--checkpoint-storage REGION=LOCATION` flags as {region: location}; a mistake is one usage line."""
    from executor.train.stores import check_location

    out: dict[str, str] = {}
    for item in items:
        region, sep, location = item.partition("=")
        if not sep or not region or not location:
            raise usage_error(f"--checkpoint-storage {item!r}: expected REGION=LOCATION (a folder or an fsspec URL)")
        if region not in regions:
            raise usage_error(f"--checkpoint-storage {item!r}: {region!r} is not a region of the fleet "
                              f"({', '.join(regions)})")
        if region in out:
            raise usage_error(f"--checkpoint-storage: region {region!r} given twice")
        why = check_location(location)
        if why:
            raise usage_error(f"--checkpoint-storage {item!r}: {why}")
        out[region] = location
    return out


def _backend(args: argparse.Namespace, live, usage_error: type[Exception]):
    """Ray connected for `--backend ray` (a local cluster of the fleet's nodes unless `--ray ADDRESS`)."""
    import contextlib

    if args.backend != "ray":
        return contextlib.nullcontext()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise usage_error("--backend ray needs Ray: .venv/bin/pip install -e '.[ray]'") from None
    from executor.ray_cluster import ray_for_fleet
    from models.fleet_index import fleet_index

    return ray_for_fleet(list(fleet_index(live.request.fleet).names), args.ray)


def pause_table(rows: list[dict]) -> str:
    """The live loop's pause rows as a right-aligned text table, floats to two decimals, '-' where none."""
    from executor.live import COLUMNS
    from service.reports.table import cell, render

    def fmt(v: object) -> str:
        return cell(v, "{:.2f}") if v is None or isinstance(v, float) else str(v)

    return render([list(COLUMNS)] + [[fmt(r[c]) for c in COLUMNS] for r in rows], first_left=False, rule=False)
