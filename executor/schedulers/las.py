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
"""

from __future__ import annotations

from executor.actions import response_from_placements
from executor.loop import LoopState
from executor.schedulers.packing import FreeMap
from models import Placement, PlanRequest, PlanResponse


class LasScheduler:
    name = "las"

    def __init__(self, threshold_device_s: float = 3600.0, promote_after_s: float | None = None):
        self.threshold_device_s = threshold_device_s
        self.promote_after_s = promote_after_s

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
        for job in order:
            if job.current is not None and job.current.replicas == free.want(job) and free.can_keep(job, job.current):
                p = job.current
            else:
                frm = job.checkpoint_region or (state.region_of[job.current.cluster] if job.current else None)
                p = free.place(job, free.want(job), frm)
            if p is None:
                why = f"las: queue {self.queue_of(state, job.id)}, no room after the jobs ahead of it"
                reasons[job.id] = ("outbid", why)
                continue
            free.take(job, p)
            placed[job.id] = p
        return response_from_placements(request, placed, reasons, engine="las")

    def replan_when_quiet(self, state: LoopState) -> bool:
        return any(True for _ in state.pending())
