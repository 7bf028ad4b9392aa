"""Strict FIFO: jobs start in submission order at their `max` replicas; the first job that does not fit
blocks every job behind it; running jobs are never preempted (a job whose node went down rejoins the
queue at its original position and is restarted from its checkpoint when its turn comes). A backfill
request (between epochs) is answered the same way: running jobs stay, the queue's head starts when it fits."""

from __future__ import annotations

from executor.actions import response_from_placements
from executor.loop import JobState, LoopState
from executor.schedulers.packing import FreeMap
from models import Placement, PlanRequest, PlanResponse


class FifoScheduler:
    name = "fifo"

    def decide(self, request: PlanRequest, state: LoopState) -> PlanResponse:
        free = FreeMap(request)
        placed: dict[str, Placement] = {}
        queue = []
        for job in request.jobs:
            if job.current is not None and free.can_keep(job, job.current):
                free.take(job, job.current)
                placed[job.id] = job.current
            else:
                queue.append(job)
        reasons: dict[str, tuple[str, str]] = {}
        queue.sort(key=lambda j: (state.jobs[j.id].arrival.submit_s, state.jobs[j.id].admitted_s))
        blocker = None
        for job in queue:
            if blocker is not None:
                reasons[job.id] = ("blocked", f"fifo: waits behind {blocker}")
                continue
            p = free.place(job, free.want(job), job.checkpoint_region or _region(state, job.current))
            if p is None:
                blocker = job.id
                reasons[job.id] = ("no_capacity", f"fifo: {free.want(job)} replica(s) do not fit now")
                continue
            free.take(job, p)
            placed[job.id] = p
        return response_from_placements(request, placed, reasons, engine="fifo")

    def startable(self, state: LoopState) -> list[JobState]:
        """The only job a backfill could start: the head of the queue (the earliest pending)."""
        pending = state.pending()
        return [min(pending, key=lambda st: (st.arrival.submit_s, st.admitted_s))] if pending else []

    def replan_when_quiet(self, state: LoopState) -> bool:
        return False       # nothing changes for fifo unless a job arrives, ends or a node fails


def _region(state: LoopState, current: Placement | None) -> str | None:
    return state.region_of[current.cluster] if current is not None else None
