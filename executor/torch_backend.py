"""The torch executor: a plan's actions become real training processes, started, checkpointed, stopped
and resumed through `torchrun` (see `executor.train`).

- start: launch the job's workers on the placement's nodes (one `torchrun` agent per node, one process
  per replica), resuming from its checkpoint if it ran before (moved first if it lies in another region);
- preempt: SIGTERM -> finish the step -> checkpoint -> exit (SIGKILL after the grace period);
- resize / move: stop as above, relaunch with the new replica count and nodes, resume;
- migrate: stop, move the checkpoint into the destination region's storage folder, relaunch there.

New workers are prelaunched: every group the plan needs is started first, gated, and gets ready
(processes, imports, rendezvous, model, optimizer) while the current workers keep training; only then
are the changing jobs stopped, checkpoints moved, and the gates opened. So a resize, move or migrate
pauses a job for stop + transfer + load + first step, not for a cold start (the `prelaunch_s` column
says what the start-up cost, off the critical path); and a plan whose new workers fail to come up
changes nothing.

A job has a fixed logical world size W, so a replica count that does not divide W runs on the largest
one that does (the placement still holds the devices; the table says so). Every action is timed
(stop, save, transfer, launch, rendezvous, load, first step) next to the pause contract v1 modelled,
and the checkpoint's measured size is what the next request should carry as `checkpoint_gb`.

Epochs are wall-clock: an epoch that begins with `apply` ends `epoch_s` seconds after `apply` began, so
the measured pauses eat into it exactly as the contract's pauses eat into a modelled epoch.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from executor.interface import AppliedAction, EpochResult, Executor, PlanApplyError, action_pause_s
from executor.train import launch as L
from executor.train import storage
from executor.train.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    NoIntactCheckpoint,
    StaleCheckpoint,
    check_resumable,
    scan,
    written_by_other_spec,
)
from executor.train.cycle import Job, launch_breakdown, stop_record, wait_first_step, worker_error
from executor.train.spec import TrainSpec
from executor.train.storage import path_part, transfer
from models import Placement, PlanRequest, PlanResponse
from models.fleet_index import fleet_index

MEASURED = ("stop_s", "save_s", "transfer_s", "prelaunch_s", "launch_s", "rendezvous_s", "load_s", "first_step_s",
            "total_s")


@dataclass
class TorchEpochResult(EpochResult):
    finish_s: dict[str, float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)    # relaunches after a crash in this epoch


@dataclass
class _Live:
    job: Job
    spec: TrainSpec
    placement: Placement | None = None
    workers: int = 0
    steps_done: int = 0
    checkpoint_bytes: int | None = None
    finished: bool = False


def worker_nodes(placement: Placement, workers: int) -> dict[str, int]:
    """The first `workers` replicas of the placement, node by node in its order (rank order)."""
    out: dict[str, int] = {}
    left = workers
    for node, count in placement.nodes.items():
        take = min(count, left)
        if take:
            out[node] = take
            left -= take
    return out


def newest_checkpoint_region(storage_root: Path, job_id: str, regions: list[str]) -> str:
    """Of `regions`, the one whose storage holds `job_id`'s newest intact checkpoint (the first on a tie,
    as after a migrate killed between its copy and the removal of the source); where none holds an intact
    one, the first holding any checkpoint (so a damaged one is reported), else the first."""
    found = {}
    for region in regions:
        path, skipped = scan(storage.job_dir(storage_root, region, job_id))
        found[region] = int(path.name[5:]) if path is not None else (-1 if skipped else -2)
    return max(regions, key=lambda r: found[r])      # (max keeps the first of equal ones)


@contextlib.contextmanager
def _naming(job_id: str):
    """A workers' CheckpointError (their one line, `status.json`'s `error`) raised with the job it is about."""
    try:
        yield
    except CheckpointError as exc:
        raise type(exc)(f"job {job_id}: {exc}") from None


class TorchExecutor(Executor):
    """Real workers for real jobs; see the module docstring."""

    def __init__(self, work_dir: Path, grace_s: float = 30.0, timeout_s: float = 300.0):
        self.work_dir = Path(work_dir)
        self.grace_s = grace_s
        self.timeout_s = timeout_s
        self._jobs: dict[str, _Live] = {}
        self._epoch_start: float | None = None
        self.applied: list[AppliedAction] = []
        self.applied_workers: list[int] = []     # worker processes each applied action left running (0: none)
        self.region_of: dict[str, str] = {}

    def add_job(self, job_id: str, spec: TrainSpec, region: str, regions: list[str] | None = None) -> None:
        """Register a job before it is first placed; `region` is where its (future) checkpoints live.

        A job that ran before in this work folder (a run killed, then started again) resumes from its
        checkpoints wherever they are: of `regions` (the fleet's; home first), the one whose storage holds
        its newest intact checkpoint, since a migrate moved them out of `region`, and the job started there
        would train from step 0 (and a later migrate would mix the two timelines). Refused (StaleCheckpoint,
        NoIntactCheckpoint) when those checkpoints are of another spec, or none of them is intact."""
        root = self.work_dir / "storage"
        region = newest_checkpoint_region(root, job_id, [region, *(r for r in regions or () if r != region)])
        path, skipped = scan(storage.job_dir(root, region, job_id))
        try:
            check_resumable(storage.job_dir(root, region, job_id), path is not None, skipped)
        except NoIntactCheckpoint as exc:
            raise NoIntactCheckpoint(f"job {job_id!r}: {exc}") from None
        other = written_by_other_spec(storage.job_dir(root, region, job_id), spec.fingerprint())
        if other is not None:
            raise StaleCheckpoint(f"job {job_id!r}: {other} holds a checkpoint of another training spec for this "
                                  "job; use another --workdir, or remove that folder to start it afresh")
        spec_path = self.work_dir / "specs" / f"{path_part(job_id)}.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(spec.to_dict()))
        self._jobs[job_id] = _Live(Job(job_id, spec_path, self.work_dir / "runs", self.work_dir / "storage", region),
                                   spec)

    def checkpoint_gb(self) -> dict[str, float]:
        """Measured checkpoint sizes (GB) of the jobs that have written one: the next request's `checkpoint_gb`."""
        return {j: live.checkpoint_bytes / 1e9 for j, live in self._jobs.items() if live.checkpoint_bytes}

    def workers_of(self, job_id: str) -> int:
        """Worker processes the job runs on now (0 when it is not running)."""
        live = self._jobs[job_id]
        return live.workers if live.placement is not None else 0

    def steps_done(self) -> dict[str, int]:
        return {j: live.steps_done for j, live in self._jobs.items()}

    # -- Executor -----------------------------------------------------------------------------------

    def placements(self) -> dict[str, Placement]:
        return {j: live.placement for j, live in self._jobs.items() if live.placement is not None}

    def apply(self, request: PlanRequest, plan: PlanResponse, now_s: float) -> list[AppliedAction]:
        t_apply = self._epoch_start = time.time()
        self.region_of = fleet_index(request.fleet).region_of
        self._validate(plan)
        actions = list(plan.actions)
        records: dict[str, dict] = {a.job: {"stop_s": 0.0, "save_s": 0.0, "transfer_s": 0.0} for a in actions}
        # 1. Prelaunch every new worker group, gated, while the current workers keep training: if any
        #    fails to come up, nothing has changed yet (the new groups are killed, the old ones run on).
        new: dict[str, tuple] = {}
        try:
            for a in actions:
                if a.kind == "preempt":
                    continue
                live = self._jobs[a.job]
                workers = live.spec.usable_workers(a.to.replicas)
                region = self.region_of[a.to.cluster]
                new[a.job] = (self._prelaunch(live, worker_nodes(a.to, workers), region), region, workers)
            for jid, (group, _, _) in new.items():
                with _naming(jid):
                    self._wait_gated(group)
        except BaseException:
            for group, _, _ in new.values():
                self._kill(group)
            raise
        # 2. Stop every job that changes, through its checkpoint.
        t0 = {}
        for a in actions:
            live = self._jobs[a.job]
            t0[a.job] = time.time() if live.job.group is not None else t_apply
            if live.job.group is not None:
                rec = self._stop(live)
                records[a.job].update(rec)
                if rec.get("bytes"):
                    live.checkpoint_bytes = rec["bytes"]
                if rec.get("at_step") is not None:
                    live.steps_done = rec["at_step"]
                live.placement = None
        # 3. Move checkpoints that change region, then open the gates. A move that fails (the destination
        #    unwritable, its disk full) ends the run in one line naming the job and both regions; the gated
        #    groups not yet handed to their jobs are killed, not left waiting on their gates. The source is
        #    removed only after an intact copy, so the job's checkpoint stays where it was.
        opened: set[str] = set()
        try:
            for a in actions:
                if a.job not in new:
                    continue
                live, (group, region, workers) = self._jobs[a.job], new[a.job]
                if region != live.job.region:
                    try:
                        moved, seconds = self._transfer(live, region)
                    except OSError as exc:
                        where = f" ({exc.filename})" if exc.filename else ""
                        raise CheckpointWriteError(
                            f"job {a.job}: cannot move its checkpoint from region {live.job.region} to {region}: "
                            f"{exc.strerror or exc}{where}") from None
                    records[a.job].update(transfer_s=seconds, transfer_bytes=moved)
                    live.job.region = region
                live.job.group, live.placement, live.workers = group, a.to, workers
                records[a.job]["workers"] = workers
                opened.add(a.job)
                self._open_gate(group)
        except BaseException:
            for jid, (group, _, _) in new.items():
                if jid not in opened:
                    self._kill(group)
            raise
        # 4. Running again: the first step after resuming ends each job's measured pause.
        for jid, (group, _, _) in new.items():
            with _naming(jid):      # its workers could not resume (none intact, another spec): one line, named
                t = self._wait_first_step(group)
            if t is not None:       # None: it had finished just as it was stopped (nothing left to run)
                records[jid].update(launch_breakdown(group, t))
                records[jid]["total_s"] = t["first_step_unix"] - t0[jid]
        out = []
        for a in actions:
            rec = records[a.job]
            if a.kind == "preempt":
                rec["total_s"] = rec["stop_s"]
            measured = {k: rec[k] for k in MEASURED if k in rec}
            out.append(AppliedAction(job=a.job, kind=a.kind, modelled_pause_s=action_pause_s(request, a),
                                     measured_s=measured, checkpoint_bytes=self._jobs[a.job].checkpoint_bytes))
            self.applied_workers.append(rec.get("workers", 0))
        self.applied.extend(out)
        return out

    def _validate(self, plan: PlanResponse) -> None:
        seen = set()
        for a in plan.actions:
            if a.job in seen:
                raise PlanApplyError(f"job {a.job}: two actions in one plan")
            seen.add(a.job)
            live = self._jobs.get(a.job)
            if live is None:
                raise PlanApplyError(f"action for unknown job {a.job!r} (no training spec registered)")
            if live.finished:
                raise PlanApplyError(f"job {a.job}: already finished")
            if live.placement != a.from_:
                raise PlanApplyError(f"job {a.job}: {a.kind} from {a.from_} but it runs at {live.placement}")
            if (a.kind == "preempt") != (a.to is None):
                raise PlanApplyError(f"job {a.job}: a {a.kind} {'has no' if a.to is None else 'needs a'} destination")
            if a.to is not None:
                if a.to.cluster not in self.region_of:
                    raise PlanApplyError(f"job {a.job}: unknown cluster {a.to.cluster!r}")
                try:
                    live.spec.usable_workers(a.to.replicas)
                except ValueError as exc:
                    raise PlanApplyError(f"job {a.job}: {exc}") from None

    def run_epoch(self, now_s: float, epoch_s: float) -> TorchEpochResult:
        start = self._epoch_start if self._epoch_start is not None else time.time()
        self._epoch_start = None
        end = start + epoch_s
        res = TorchEpochResult()
        while True:
            self._check_nodes(res)
            for jid, live in self._jobs.items():
                group = live.job.group
                if group is None or jid in res.finished:
                    continue
                state = self._poll(group)
                step = self._progress_step(group)
                if step is not None:
                    live.steps_done = step
                if state == "finished":
                    status = self._finish(group)
                    live.checkpoint_bytes = status.get("bytes") or live.checkpoint_bytes
                    live.steps_done = status.get("step", live.steps_done)
                    live.job.group, live.placement, live.finished = None, None, True
                    res.finished.append(jid)
                    res.finish_s[jid] = now_s + min(status.get("exit_unix", time.time()) - start, epoch_s)
                elif state in ("failed", "preempted"):
                    # A crash (or a stop nobody asked for): resume from the last good checkpoint in place,
                    # unless the workers said a relaunch would fail the same way (or start the job over).
                    error = self._worker_error(group)
                    self._kill(group)
                    if error is not None:
                        live.job.group, live.placement = None, None
                        raise CheckpointError(f"job {jid}: {error}")
                    live.job.group = self._restart(live)
                    res.restarts[jid] = res.restarts.get(jid, 0) + 1
            if time.time() >= end or not any(l.job.group for l in self._jobs.values()):
                break
            time.sleep(min(self.poll_s, max(0.0, end - time.time())))
        for jid, live in self._jobs.items():
            res.steps[jid] = live.steps_done
            res.progress[jid] = float(live.steps_done * live.spec.world_size)
        return res

    def stop_all(self) -> None:
        """Stop every running job through its checkpoint path (an interrupt or a SIGTERM of the command):
        the workers save, then exit; `close` kills whatever is left."""
        for live in self._jobs.values():
            if live.job.group is not None:
                # a stop that fails leaves its group to `close`, which kills it
                with contextlib.suppress(Exception):
                    self._stop(live)
                    live.job.group = None

    def close(self) -> None:
        for live in self._jobs.values():
            if live.job.group is not None:
                self._kill(live.job.group)
                live.job.group = None
        L.drain()

    # -- how a worker group is launched, watched and stopped (the Ray backend overrides these) --------

    poll_s = 0.1

    def _prelaunch(self, live: _Live, nodes: dict[str, int], region: str):
        return live.job.prelaunch(nodes, region)

    def _start(self, live: _Live, nodes: dict[str, int]):
        return live.job.start(nodes)

    def _restart(self, live: _Live):
        """Relaunch a crashed group in place, resuming from the last good checkpoint."""
        return self._start(live, worker_nodes(live.placement, live.workers))

    def _wait_gated(self, group) -> None:
        L.wait_gated(group, self.timeout_s)

    def _transfer(self, live: _Live, region: str) -> tuple[int, float]:
        """A migrate's copy of the job's newest intact checkpoint into `region`'s storage: (bytes, seconds)."""
        return transfer(live.job.storage_root, live.job.name, live.job.region, region)

    def _open_gate(self, group) -> None:
        L.open_gate(group)

    def _wait_first_step(self, group) -> dict | None:
        return wait_first_step(group, self.timeout_s)

    def _stop(self, live: _Live) -> dict:
        return stop_record(live.job, self.grace_s)

    def _poll(self, group) -> str:
        return L.poll(group)

    def _progress_step(self, group) -> int | None:
        return L.progress_step(group)

    def _finish(self, group) -> dict:
        """A group that ended by itself: reap it; rank 0's status."""
        for a in group.agents:
            a.wait()
        L.kill(group)
        return L.read_json(group.run_dir / "status.json") or {}

    def _kill(self, group) -> None:
        L.kill(group)

    def _worker_error(self, group) -> str | None:
        """Why a failed group's workers gave up for good (`executor.train.cycle.worker_error`), or None."""
        return worker_error(group.run_dir)

    def _check_nodes(self, res: TorchEpochResult) -> None:
        """Report nodes that went down (the local torch backend runs on one host: none)."""
