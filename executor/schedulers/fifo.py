"""FIFO: jobs start in submission order at their `max` replicas; running jobs are never preempted (a
job whose node went down rejoins the queue at its original position and is restarted from its
checkpoint when its turn comes).

Two flavours:
- strict (the default; the loop without backfill): the first job that does not fit blocks every job
  behind it. A backfill request (between epochs) is answered the same way.
- `easy` (the replay's default with backfill on, as EASY backfilling does it, non-clairvoyant): the
  first job that does not fit (the head) gets a reservation, the nodes it will start on, and jobs
  behind it start, in order, only on the devices left outside the reservation. The reservation is the
  freest nodes of the pool the head is closest to fitting in (`FreeMap.reserve`): nothing new starts
  there, so they only drain, and the head starts the moment its running neighbours finish instead of
  waiting behind devices refilled by the jobs behind it. Without durations no job is let onto
  reserved nodes "because it ends first" (EASY's other half needs estimates this replay does not give
  a scheduler). Only the head is protected: a second blocked job is skipped, not waited on; a job its
  own quota holds back is skipped and reserves nothing.
"""

from __future__ import annotations

from executor.actions import response_from_placements
from executor.loop import JobState, LoopState
from executor.schedulers.packing import FreeMap
from models import Placement, PlanRequest, PlanResponse


class FifoScheduler:
    name = "fifo"

    def __init__(self, easy: bool = False):
        self.easy = easy

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
            if blocker is not None and not self.easy:
                reasons[job.id] = ("blocked", f"fifo: waits behind {blocker}")
                continue
            home = job.checkpoint_region or _region(state, job.current)
            p = free.place(job, free.want(job), home)
            if p is None and self.easy and not free.quota_ok(job, free.want(job)):
                reasons[job.id] = ("quota", (f"fifo: {free.want(job)} replica(s) exceed the {job.tier} quota "
                                             f"of {job.tenant} now"))
                continue        # its own quota holds it, not the devices: nothing to reserve
            if p is None:
                if blocker is None:
                    blocker = job.id
                    reasons[job.id] = ("no_capacity", f"fifo: {free.want(job)} replica(s) do not fit now")
                    if self.easy:
                        free.reserve(job, free.want(job), home)
                else:
                    reasons[job.id] = ("no_capacity", f"fifo: does not fit beside the reservation of {blocker}")
                continue
            free.take(job, p)
            placed[job.id] = p
        return response_from_placements(request, placed, reasons, engine="fifo")

    def startable(self, state: LoopState) -> list[JobState]:
        """The jobs a backfill could start: strict, the head of the queue (the earliest pending);
        easy, any pending job (behind the head, outside its reservation)."""
        pending = state.pending()
        if self.easy:
            return pending
        return [min(pending, key=lambda st: (st.arrival.submit_s, st.admitted_s))] if pending else []

    def replan_when_quiet(self, state: LoopState) -> bool:
        return False       # nothing changes for fifo unless a job arrives, ends or a node fails


def _region(state: LoopState, current: Placement | None) -> str | None:
    return state.region_of[current.cluster] if current is not None else None
