"""The simulated executor: applies plans to a model of the fleet and advances work at the contract's rates.

What it models, exactly as contract v1 prices it:
- A placed job does `rate = replicas * devices_per_replica * speed[accelerator] * locality` units of
  work (device-seconds at speed 1) per second, `locality = 1 - remote_data_penalty` when it runs outside
  its `data_region`, else 1.
- An action's pause is `placement.score.pause_for_action(request, action)`, charged as the contract
  charges it: `min(pause, epoch_s)`. A started, resized, moved or migrated job holds its new devices but
  does no work for that long at the start of the epoch. A preempted job's pause (its checkpoint save) is
  recorded as lost device time of the devices it held (`lost_device_s`); its devices go to the plan's
  other jobs at once, which pay their own start pauses. Preemption keeps the work done (a checkpoint).
- A job finishes the moment its work is done, mid-epoch; its devices stay idle until the next plan
  (the next epoch's, or a backfill plan between epochs: the loop may run it for any step shorter than
  an epoch; a pause longer than a step carries on into the next one, and `next_finish_s` says when the
  next job will finish).

Every epoch it accounts each up device-second as busy (a job working), paused (held during a pause) or
idle, each counted on its own, so `busy + paused + idle == capacity` is a check, not a definition.
Plans are validated before anything changes: an action that does not match what runs, a placement on a
missing or down node, an overfull node, or a running job left on a down node raises `PlanApplyError`
and leaves the executor as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from executor.interface import AppliedAction, EpochResult, Executor, PlanApplyError, action_pause_s
from models import Placement, PlanRequest, PlanResponse
from models.fleet_index import fleet_index
from placement import contract

__all__ = ["PlanApplyError", "SimEpochResult", "SimExecutor"]


@dataclass
class SimEpochResult(EpochResult):
    """EpochResult plus the simulator's exact ledger for the epoch."""

    finish_s: dict[str, float] = field(default_factory=dict)     # job -> completion time (absolute seconds)
    work: dict[str, float] = field(default_factory=dict)         # job -> work done during this epoch
    busy_device_s: float = 0.0
    paused_device_s: float = 0.0
    idle_device_s: float = 0.0
    capacity_device_s: float = 0.0
    held_device_s: dict[str, float] = field(default_factory=dict)   # job -> device-seconds it held (busy + paused)


@dataclass
class _Running:
    placement: Placement
    devices: int          # devices held
    rate: float           # work per second while not paused
    region: str


class SimExecutor(Executor):
    """Replay backend: jobs are amounts of work; see the module docstring for the model."""

    def __init__(self, work: Mapping[str, float] | None = None):
        self.work_total: dict[str, float] = dict(work or {})
        self.work_done: dict[str, float] = {}
        self.finished: set[str] = set()
        self.lost_device_s = 0.0              # preemption pauses, accumulated
        self._running: dict[str, _Running] = {}
        self._pause: dict[str, float] = {}    # job -> pause charged at the start of the next epoch
        self._node_devices: dict[str, int] = {}
        self._down: frozenset[str] = frozenset()

    def add_job(self, job_id: str, work: float) -> None:
        """Register a job's total work (device-seconds at speed 1) before it is first placed."""
        if not work > 0:
            raise ValueError(f"job {job_id}: work must be > 0, got {work!r}")
        self.work_total[job_id] = float(work)

    # -- Executor -----------------------------------------------------------------------------------

    def placements(self) -> dict[str, Placement]:
        return {j: r.placement for j, r in self._running.items()}

    def apply(self, request: PlanRequest, plan: PlanResponse, now_s: float) -> list[AppliedAction]:
        fx = fleet_index(request.fleet)
        nodes = fx.node_table()
        down = frozenset(request.fleet.down_nodes)
        jobs = {j.id: j for j in request.jobs}
        region_of = fx.region_of
        T = request.epoch_s
        new_running = dict(self._running)
        changes: list[tuple[str, str, float]] = []        # (job, kind, pause)
        seen: set[str] = set()
        if plan.status == "infeasible" and plan.actions:
            raise PlanApplyError("an infeasible plan carries no actions")
        for a in plan.actions:
            if a.job in seen:
                raise PlanApplyError(f"job {a.job}: two actions in one plan")
            seen.add(a.job)
            job = jobs.get(a.job)
            if job is None:
                raise PlanApplyError(f"action for unknown job {a.job!r}")
            if a.job in self.finished or a.job not in self.work_total:
                raise PlanApplyError(f"job {a.job}: {'already finished' if a.job in self.finished else 'no work registered'}")
            cur = self._running.get(a.job)
            if (cur.placement if cur else None) != a.from_:
                raise PlanApplyError(f"job {a.job}: action {a.kind} from {a.from_} but it runs at "
                                     f"{cur.placement if cur else None}")
            if a.kind == "preempt":
                if a.to is not None:
                    raise PlanApplyError(f"job {a.job}: a preempt has no destination")
                new_running.pop(a.job)
                changes.append((a.job, a.kind, action_pause_s(request, a)))
                continue
            if a.to is None:
                raise PlanApplyError(f"job {a.job}: {a.kind} needs a destination")
            to = a.to
            if to.accelerator not in job.speed:
                raise PlanApplyError(f"job {a.job}: accelerator {to.accelerator} not in its speed")
            r = to.replicas
            if not job.replicas.min <= r <= job.replicas.max:
                raise PlanApplyError(f"job {a.job}: {r} replicas outside [{job.replicas.min}, {job.replicas.max}]")
            if not job.replicas.grants(r):
                raise PlanApplyError(f"job {a.job}: {r} replicas not in its allowed counts {job.replicas.allowed}")
            for n in to.nodes:
                info = nodes.get(n)
                if info is None or info[0] != to.cluster or info[1] != to.accelerator:
                    raise PlanApplyError(f"job {a.job}: node {n!r} is not a {to.accelerator} node of {to.cluster}")
                if n in down:
                    raise PlanApplyError(f"job {a.job}: node {n!r} is down")
            region = region_of[to.cluster]
            loc = contract.locality(job.data_region, region, request.policy.remote_data_penalty)
            new_running[a.job] = _Running(to, r * job.devices_per_replica,
                                          contract.rate(r, job.devices_per_replica, job.speed[to.accelerator], loc),
                                          region)
            changes.append((a.job, a.kind, action_pause_s(request, a)))
        used: dict[str, int] = {}
        for jid, run in new_running.items():
            if jid not in seen and any(n in down for n in run.placement.nodes):
                raise PlanApplyError(f"job {jid}: left running on down node(s) without an action")
            dpr = run.devices // run.placement.replicas
            for n, k in run.placement.nodes.items():
                used[n] = used.get(n, 0) + k * dpr
        for n, u in used.items():
            if n not in nodes:
                raise PlanApplyError(f"node {n!r} is not in the fleet")
            if u > nodes[n][2]:
                raise PlanApplyError(f"node {n} overfull: {u} > {nodes[n][2]} devices")
        # Validated: commit.
        applied: list[AppliedAction] = []
        for jid, kind, pause in changes:
            charged = contract.charged_s(pause, T)
            if kind == "preempt":
                self.lost_device_s += self._running[jid].devices * charged
                self._pause.pop(jid, None)
            else:
                self._pause[jid] = charged
            applied.append(AppliedAction(job=jid, kind=kind, modelled_pause_s=pause))
        self._running = new_running
        self._node_devices = {n: d for n, (_, _, d) in nodes.items()}
        self._down = down
        return applied

    def next_finish_s(self, now_s: float) -> float | None:
        """The earliest time a placed job will have done its work (its pause first), exactly as
        `run_epoch` will find it; None when nothing runs."""
        best = None
        for jid, run in self._running.items():
            remaining = self.work_total[jid] - self.work_done.get(jid, 0.0)
            t = now_s + self._pause.get(jid, 0.0) + remaining / run.rate
            if best is None or t < best:
                best = t
        return best

    def run_epoch(self, now_s: float, epoch_s: float) -> SimEpochResult:
        res = SimEpochResult()
        free = {n: d for n, d in self._node_devices.items() if n not in self._down}
        res.capacity_device_s = sum(free.values()) * epoch_s
        for jid in sorted(self._running):
            run = self._running[jid]
            owed = self._pause.pop(jid, 0.0)
            pause = min(owed, epoch_s)
            if owed > pause:                  # a pause longer than this step (a step between epochs) carries on
                self._pause[jid] = owed - pause
            dpr = run.devices // run.placement.replicas
            for n, k in run.placement.nodes.items():
                free[n] -= k * dpr
            remaining = self.work_total[jid] - self.work_done.get(jid, 0.0)
            can_run = epoch_s - pause
            if run.rate * can_run >= remaining:
                t_run = remaining / run.rate
                self.work_done[jid] = self.work_total[jid]
                res.finished.append(jid)
                res.finish_s[jid] = now_s + pause + t_run
                res.idle_device_s += run.devices * (epoch_s - pause - t_run)
                res.work[jid] = remaining
            else:
                t_run = can_run
                self.work_done[jid] = self.work_done.get(jid, 0.0) + run.rate * t_run
                res.work[jid] = run.rate * t_run
            res.busy_device_s += run.devices * t_run
            res.paused_device_s += run.devices * pause
            res.held_device_s[jid] = run.devices * (pause + t_run)
            res.progress[jid] = self.work_done[jid]
        res.idle_device_s += sum(free.values()) * epoch_s
        for jid in res.finished:
            del self._running[jid]
            self.finished.add(jid)
        return res

