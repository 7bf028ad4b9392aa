"""The live loop's inputs and report: `meridian run FLEET.json JOBS.json` reads a local fleet of CPU slots
and real training jobs, and drives them through THE epoch loop (`executor.loop.run_loop`) with the
planner and the torch executor.

FLEET.json: the contract's `fleet` object, or a contract request without `jobs` (`fleet` plus optional
`epoch_s`, `policy`, `quotas`). JOBS.json: a list (or `{"jobs": [...]}`) of contract jobs, each with two
more keys: `submit_s` (seconds after the start) and `train` (a `TrainSpec`: the job's logical world
size, steps and model; see `executor.train.spec`). A job's `replicas.allowed` (contract v1.1) defaults
to the divisors of its world size within `[min, max]`, so the planner never grants a count the job
would run on fewer workers than it holds; an `allowed` given by hand must list such divisors.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from executor.train.spec import TooMuchMemory, TrainSpec
from models import BadRequest, FieldError, PlanRequest, parse_request
from models.fleet_index import fleet_devices

MAX_SUBMIT_S = 7 * 86_400.0        # a live run waits for a job's submit time in real seconds


@dataclass
class LiveInput:
    request: PlanRequest            # fleet, policy, quotas, epoch_s and the jobs (contract fields only)
    submit_s: dict[str, float]
    train: dict[str, TrainSpec]


def load_live_input(fleet_doc: object, jobs_doc: object) -> LiveInput:
    """Validate both files together; every mistake names its path (`jobs[2].train.steps`, ...)."""
    errors: list[FieldError] = []
    if isinstance(fleet_doc, dict) and "fleet" in fleet_doc:
        base = dict(fleet_doc)
        if "jobs" in base:
            errors.append(FieldError("fleet.jobs", "...", "FLEET.json holds no jobs: put them in JOBS.json"))
    else:
        base = {"fleet": fleet_doc}
    jobs = jobs_doc.get("jobs") if isinstance(jobs_doc, dict) else jobs_doc
    if not isinstance(jobs, list):
        raise BadRequest([FieldError("jobs", jobs_doc, "JOBS.json must be a list of jobs (or {\"jobs\": [...]})")])
    contract_jobs, submit_s, train, where = [], {}, {}, []
    for i, j in enumerate(jobs):
        if not isinstance(j, dict):
            errors.append(FieldError(f"jobs[{i}]", j, "must be an object"))
            continue
        j = dict(j)
        sub, spec = j.pop("submit_s", 0.0), j.pop("train", None)
        jid = j.get("id") if isinstance(j.get("id"), str) else f"jobs[{i}]"   # a bad id is reported by the door
        if not isinstance(sub, (int, float)) or isinstance(sub, bool) or not 0 <= sub <= MAX_SUBMIT_S:
            errors.append(FieldError(f"jobs[{i}].submit_s", sub, f"must be a number in [0, {MAX_SUBMIT_S:g}] "
                                     "(seconds after the start)"))
        if j.get("current") is not None:
            errors.append(FieldError(f"jobs[{i}].current", j["current"], "must be null: the live loop starts every job"))
        if spec is None:
            errors.append(FieldError(f"jobs[{i}].train", None, "missing: the job's training spec"))
        else:
            try:
                ts = TrainSpec.from_dict(spec, where=f"jobs[{i}].train")
            except TooMuchMemory as exc:
                errors.append(FieldError(exc.path, exc.value, exc.message))
            except (ValueError, TypeError) as exc:
                errors.append(FieldError(f"jobs[{i}].train", spec, str(exc)))
            else:
                rep = j.get("replicas")
                if isinstance(rep, dict) and isinstance(rep.get("min"), int) and isinstance(rep.get("max"), int):
                    fits = [r for r in ts.valid_workers() if rep["min"] <= r <= rep["max"]]
                    if not fits:
                        errors.append(FieldError(f"jobs[{i}].replicas", rep, f"no replica count in "
                                                 f"[{rep['min']}, {rep['max']}] divides train.world_size "
                                                 f"{ts.world_size}"))
                    elif rep["max"] > ts.world_size:
                        errors.append(FieldError(f"jobs[{i}].replicas.max", rep["max"], f"exceeds "
                                                 f"train.world_size {ts.world_size} (a replica runs >= 1 logical rank)"))
                    elif isinstance(rep.get("allowed"), list):
                        errors.extend(FieldError(f"jobs[{i}].replicas.allowed[{k}]", a, f"does not divide "
                                                 f"train.world_size {ts.world_size}")
                                      for k, a in enumerate(rep["allowed"])
                                      if isinstance(a, int) and not isinstance(a, bool) and a > 0
                                      and ts.world_size % a)
                    else:   # contract v1.1: the planner grants only counts the job can run on, all devices used
                        j["replicas"] = {**rep, "allowed": fits}
                    if fits:    # exact mode's buffers grow as the job runs on fewer workers: check the fewest
                        try:
                            ts.check_memory(min(fits), where=f"jobs[{i}].train")
                        except TooMuchMemory as exc:
                            errors.append(FieldError(exc.path, exc.value, exc.message))
                train[jid] = ts
        submit_s[jid] = float(sub) if isinstance(sub, (int, float)) else 0.0
        contract_jobs.append(j)
        where.append(i)
    try:
        request = parse_request({**base, "jobs": contract_jobs})
    except BadRequest as exc:
        errors.extend(exc.errors)
        request = None
    else:
        errors.extend(never_runs(request, where))
    if errors:
        raise BadRequest(errors)
    return LiveInput(request, submit_s, train)


def never_runs(request: PlanRequest, where: list[int]) -> list[FieldError]:
    """The jobs no plan could ever run on this fleet (the loop would reject them on arrival, a run that
    cannot succeed): refused up front, naming `speed` where no pool has a listed accelerator (in the job's
    regions), else `replicas.min`. `where[k]` is the JOBS.json index of the request's k-th job."""
    from executor.loop import never_fits

    quotas = {(q.tenant, q.tier): q.devices for q in request.quotas}
    pools = {(c.region, g.accelerator) for c in request.fleet.clusters for g in c.node_groups}
    errors = []
    for i, job, why in zip(where, request.jobs, never_fits(request.jobs, request.fleet, quotas), strict=True):
        if not why:
            continue
        if not any(acc in job.speed and (job.regions is None or region in job.regions) for region, acc in pools):
            errors.append(FieldError(f"jobs[{i}].speed", dict(job.speed), "the fleet has none of these "
                                     "accelerators" + (f" in regions {', '.join(job.regions)}" if job.regions else "")
                                     + ": the job could never run"))
        else:
            errors.append(FieldError(f"jobs[{i}].replicas.min", job.replicas.min, f"the job could never run: {why}"))
    return errors


COLUMNS = ("epoch_t_s", "job", "kind", "workers", "modelled_s", "measured_s", "stop_s", "save_s", "transfer_s",
           "prelaunch_s", "launch_s", "rendezvous_s", "load_s", "first_step_s", "ckpt_MB")


def pause_rows(applied: list) -> list[dict]:
    """One row per action, keyed by COLUMNS: the contract's modelled pause beside what the real cycle took
    (the service renders them as a table)."""
    rows = []
    for t, a, workers in applied:
        m = a.measured_s
        measured = m.get("total_s")       # measured end to end: SIGTERM (or apply) -> first step after resuming
        if measured is None:
            measured = m.get("stop_s", 0.0) if a.kind == "preempt" else sum(
                m.get(k, 0.0) for k in ("stop_s", "transfer_s", "launch_s", "rendezvous_s", "load_s", "first_step_s"))
        rows.append({"epoch_t_s": t, "job": a.job, "kind": a.kind, "workers": workers,
                     "modelled_s": a.modelled_pause_s, "measured_s": measured,
                     **{k: m.get(k) for k in COLUMNS[6:14]},
                     "ckpt_MB": a.checkpoint_bytes / 1e6 if a.checkpoint_bytes else None})
    return rows


@dataclass
class LiveResult:
    state: object                                  # executor.loop.LoopState at the end
    rows: list[dict] = field(default_factory=list)   # pause_rows of every applied action
    steps: dict[str, int] = field(default_factory=dict)


def run_live(live: LiveInput, work_dir: Path, epoch_s: float | None = None, time_limit_s: float = 2.0,
             greedy: bool = False, grace_s: float = 30.0, max_epochs: int = 60,
             until: Callable | None = None, log: Callable[[str], None] | None = None,
             backfill_window_s: float | None = 2.0, backend: str = "torch",
             locations: dict[str, str] | None = None, observers: list | None = None) -> LiveResult:
    """Plan and run `live`'s jobs for real until every one has finished (or `until(state)`, or max_epochs).

    THE epoch loop (`executor.loop.run_loop`) drives the planner (`CpsatScheduler`, deterministic) and
    a `TorchExecutor`; measured checkpoint sizes become the next requests' `checkpoint_gb`. Between
    epochs the loop polls the workers every `backfill_window_s` seconds and starts waiting jobs on
    freed slots (and arrivals on free ones) with a backfill plan at once; None: epochs only. With backfill
    on the planner follows the replay's rule (`executor.schedulers.cpsat.event_options`: nodes drain
    for a waiting gang job, which a full plan starts at once where preempting the occupants pays).
    `backend`: "torch" (`torchrun` workers on this host) or "ray" (`RayExecutor`: Ray must be connected,
    each fleet node a Ray node advertising its name; `executor.ray_cluster.ray_for_fleet`); `locations`
    (Ray only): region -> checkpoint location, a folder or an fsspec URL (`executor.train.stores`).
    `observers` hear each epoch record after the run's own (`executor.loop.run_loop`)."""
    from executor.loop import Arrival, LoopConfig, run_loop
    from executor.schedulers.cpsat import CpsatScheduler, event_options
    from executor.torch_backend import TorchExecutor

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    req = live.request
    epoch_s = epoch_s or req.epoch_s
    policy = req.policy.model_copy(update={"time_limit_s": time_limit_s, "deterministic": True})
    config = LoopConfig(fleet=req.fleet, epoch_s=epoch_s, policy=policy, quotas=req.quotas, start_s=0.0,
                        max_s=max_epochs * epoch_s, until=until, backfill_window_s=backfill_window_s)
    if backend == "ray":
        from executor.ray_backend import RayExecutor

        executor = RayExecutor(work_dir, grace_s=grace_s, locations=locations)
    else:
        executor = TorchExecutor(work_dir, grace_s=grace_s)
    first_region = req.fleet.regions[0].name
    for job in req.jobs:
        home = job.data_region or (job.regions[0] if job.regions else first_region)
        executor.add_job(job.id, live.train[job.id], home, regions=[r.name for r in req.fleet.regions])
    # Templates the loop copies into every request: copies, so measured sizes never touch the input.
    arrivals = [Arrival(live.submit_s[j.id], j.model_copy(deep=True),
                        float(live.train[j.id].steps * live.train[j.id].world_size)) for j in req.jobs]
    applied: list = []
    seen = 0

    def observe(rec, state) -> None:
        nonlocal seen
        new = executor.applied[seen:]
        for a, workers in zip(new, executor.applied_workers[seen:], strict=True):
            applied.append((rec.t_s, a, workers))
        seen = len(executor.applied)
        for jid, gb in executor.checkpoint_gb().items():
            if jid in state.jobs:
                state.jobs[jid].arrival.job.checkpoint_gb = gb
        steps = executor.steps_done()
        running = ", ".join(f"{j.id}x{j.placement.replicas}@{steps.get(j.id, 0)}" for j in state.running()) or "-"
        acts = ", ".join(f"{a.kind} {a.job}" for a in new) or "no change"
        done = sum(1 for s in state.jobs.values() if s.status == "done")
        say(f"t={rec.t_s:6.0f}s  {acts:<48} running: {running}  pending: {rec.pending}  done: {done}")

    slots = fleet_devices(req.fleet)
    say(f"meridian run: {len(req.jobs)} jobs on {slots} slots ({backend}), epoch {epoch_s:g}s, work in {work_dir}")
    try:
        scheduler = CpsatScheduler(replan_every=1, greedy=greedy, **event_options(backfill_window_s is not None))
        if not greedy:
            from placement import load_solver

            load_solver()   # now, not inside the first epoch's plan limit
        state = run_loop(executor, arrivals, scheduler, config,
                         observers=[observe, *(observers or [])])
    except BaseException:    # Ctrl-C, the SIGTERM of `timeout`, systemd or kill (service.cli), or a job's
        # CheckpointError: the other jobs keep their progress since their last checkpoints
        say("meridian run: stopping every job through its checkpoint")
        executor.stop_all()
        raise
    finally:
        executor.close()
    return LiveResult(state, pause_rows(applied), executor.steps_done())
