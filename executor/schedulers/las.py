"""Tiresias-style two-queue least-attained-service (discretized 2D-LAS), preemptive every epoch.

Attained service is devices x time held (GPU-seconds). Queue 0 holds the jobs below
`threshold_device_s` (default 3,600: one GPU-hour), queue 1 the rest; queue 0 goes first, each queue
in submission order (Tiresias's FIFO within a queue). Every epoch the whole order is packed afresh at
`max` replicas (capped at what the fleet could ever hold), skipping jobs that do not fit (work-conserving); a job keeps its current nodes when
they still have room, and a running job that does not make it is preempted. One exception keeps the
plans valid under contract v1: running premium jobs are not preempted (unless the policy's
`premium_preemptible`), exactly as the planner must treat them. There is no starvation promotion
(Tiresias's optional STARVELIMIT): with `promote_after_s` set, a queue-1 job waiting that long since
it last ran goes back to queue 0. A backfill request (`policy.mode: "backfill"`, between epochs) keeps
every running job where it runs and starts waiting jobs in the same order on the free devices, as the
event-driven original starts jobs the moment devices free up.

With `idle_first` (the replay's default with backfill on) a boundary's re-pack places a job that is
not running on idle devices (free of every running job) whenever they hold it, and takes the devices
of running jobs behind it in the order only when they do not: the order decides who runs, as before,
but nobody is preempted to make room that was already there. Without it (the loop before backfill)
the re-pack packs each job best-fit over every device not yet claimed by a job ahead of it, which
preempts a running job whose node happens to fit best even when an idle node would do.
"""

from __future__ import annotations

from executor.actions import response_from_placements
from executor.loop import LoopState
from executor.schedulers.packing import FreeMap
from models import Job, Placement, PlanRequest, PlanResponse


class LasScheduler:
    name = "las"

    def __init__(self, threshold_device_s: float = 3600.0, promote_after_s: float | None = None,
                 idle_first: bool = False):
        self.threshold_device_s = threshold_device_s
        self.promote_after_s = promote_after_s
        self.idle_first = idle_first

    def queue_of(self, state: LoopState, job_id: str) -> int:
        st = state.jobs[job_id]
        if st.attained_device_s < self.threshold_device_s:
            return 0
        if self.promote_after_s is not None and st.status == "pending":
            since = st.last_stop_s if st.last_stop_s is not None else st.arrival.submit_s
            if state.now_s - since >= self.promote_after_s:
                return 0
        return 1

    def decide(self, request: PlanRequest, state: LoopState) -> PlanResponse:
        free = FreeMap(request)
        placed: dict[str, Placement] = {}
        protect = not request.policy.premium_preemptible
        backfill = request.policy.mode == "backfill"    # between epochs: running jobs stay, waiting ones start
        order = []
        for job in request.jobs:
            if (backfill or (protect and job.tier == "premium")) and job.current is not None \
                    and free.can_keep(job, job.current):
                free.take(job, job.current)
                placed[job.id] = job.current
            else:
                order.append(job)
        order.sort(key=lambda j: (self.queue_of(state, j.id), state.jobs[j.id].arrival.submit_s))
        reasons: dict[str, tuple[str, str]] = {}
        idle = _IdleView(request, free, order) if self.idle_first and not backfill else None
        for job in order:
            if idle is not None and job.current is not None:
                idle.done_with(job)
            if job.current is not None and job.current.replicas == free.want(job) and free.can_keep(job, job.current):
                p = job.current
            else:
                frm = job.checkpoint_region or (state.region_of[job.current.cluster] if job.current else None)
                p = idle.map.place(job, free.want(job), frm) if idle is not None else None
                if p is None:
                    p = free.place(job, free.want(job), frm)
            if p is None:
                why = f"las: queue {self.queue_of(state, job.id)}, no room after the jobs ahead of it"
                reasons[job.id] = ("outbid", why)
                continue
            free.take(job, p)
            if idle is not None:
                idle.sync(p.cluster, p.accelerator, p.nodes)
            placed[job.id] = p
        return response_from_placements(request, placed, reasons, engine="las")

    def replan_when_quiet(self, state: LoopState) -> bool:
        return any(True for _ in state.pending())



class _IdleView:
    """The devices that are free and that no running job still to be considered holds: `free`'s
    count less those jobs' current devices, node by node (none where a job ahead already claimed
    devices a running one holds)."""

    def __init__(self, request: PlanRequest, free: FreeMap, order: list[Job]):
        self.free = free
        self.map = FreeMap(request)
        self.map.quota_left = free.quota_left       # one quota ledger: only `free` takes
        self.held: dict[str, int] = {}
        for job in order:
            if job.current is not None:
                for n, k in job.current.nodes.items():
                    self.held[n] = self.held.get(n, 0) + k * job.devices_per_replica
        for (cluster, acc), pool in self.map.pools.items():
            self.sync(cluster, acc, pool.free)

    def done_with(self, job: Job) -> None:
        """`job` (running) is being decided: its devices no longer count as held by a job to come."""
        p = job.current
        for n, k in p.nodes.items():
            self.held[n] -= k * job.devices_per_replica
        self.sync(p.cluster, p.accelerator, p.nodes)

    def sync(self, cluster: str, accelerator: str, nodes) -> None:
        pool = self.map.pools.get((cluster, accelerator))
        fpool = self.free.pools.get((cluster, accelerator))
        if pool is None or fpool is None:
            return
        for n in list(nodes):
            if n in pool.free:
                v = max(0, fpool.free[n] - self.held.get(n, 0))
                if v != pool.free[n]:
                    pool.set_free(n, v)
