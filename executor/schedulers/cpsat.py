"""The planner as a replay scheduler: each epoch's contract request goes to `placement.plan` as is.

`time_limit_s` caps the planner per epoch (the replay sets `policy.deterministic`, so the same replay
gives the same plans). In an epoch where nothing changed (no arrival, completion or failure) it replans
only when jobs wait and `replan_every` epochs have passed since the last plan, so that the controller's
new priorities (aging, attained service) reach the planner without paying for a plan every epoch.
With `fast_path` (the replay turns it on), an epoch whose optimum is known without search (everyone placed at
their best value, nothing moved: `executor.schedulers.fastpath`) skips the optimizer.
"""

from __future__ import annotations

from typing import Any

from executor.loop import LoopState
from models import Placement, PlanRequest, PlanResponse

# A head's value must beat this many times the value of the jobs it preempts (with both pauses): the
# planner's own trade (`reservation._clearing`), no more eager (Philly, backfill on, above the floor:
# days 30-37 210 s either way, 44-51 268 -> 256 s, 60-67 66 -> 64 s).
PREEMPT_MARGIN = 1.0


# A head clears only occupants that have held devices more than this many times as long as it has
# (LAS's rule with hysteresis): two long gang jobs never swap a node back and forth, each swap paying
# two pauses and sharing the node round-robin (Philly days 20-27: 364 of cpsat's 528 preemptions
# were such clearings, the basic 8-GPU jobs 383 s of its 500 s above the floor).
CLEAR_FACTOR = 2.0


# `defrag` (moving small jobs to make a whole node for the head at full plans, `reservation._defrag`):
# with backfill on, Philly days 30-37 216 -> 196 s above the floor, 20-27 478 -> 473, 44-51 198 -> 168,
# the light windows unchanged (docs/notes/work-conserving-replay.md, issue 11).


# With backfill on, a full plan never swaps a running gang job for a gang job of its tier or lower
# (`gangkeep.py`): the swap only moves the wait to the job preempted, which must then wait for a node
# to drain itself (Philly days 60-67: five basic 8-GPU jobs waited 3,300-6,700 s each after such
# swaps; cpsat 1.6 s above las in mean JCT).


def event_options(backfill: bool) -> dict[str, Any]:
    """cpsat's options in a loop that acts on events (`backfill`: backfill plans between epochs): hold
    nodes draining for the gang job the plans pass over, and at full plans start it at once where
    preempting the occupants pays; a job preempted for a change the gang filter undid keeps running
    where its devices stayed free (no preemption that leaves a node idle). One rule for the replay
    (`replay.harness`) and the live loop (`executor.live`); without backfill, the loop before it (no
    reservation)."""
    return {"reserve": True, "preempt_margin": PREEMPT_MARGIN, "drain_by_held": True,
            "clear_factor": CLEAR_FACTOR, "keep_gangs": True, "defrag": True,
            "keep_restores": True} if backfill else {}


class CpsatScheduler:
    name = "cpsat"

    def __init__(self, replan_every: int = 3, greedy: bool = False, fast_path: bool = False,
                 reserve: bool = False, reserve_heads: int = 1, preempt_margin: float | None = None,
                 drain_by_held: bool = False, clear_factor: float | None = None, keep_gangs: bool = False,
                 defrag: bool = False, yield_after_s: float | None = None, yield_ratio: float = 1.0,
                 keep_restores: bool = False):
        if replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {replan_every}")
        if reserve_heads < 1:
            raise ValueError(f"reserve_heads must be >= 1, got {reserve_heads}")
        self.replan_every = replan_every
        self.greedy = greedy
        self.fast_path = fast_path
        self.fast_plans = 0          # epochs the fast path answered
        self.reserve = reserve
        self.reserve_heads = reserve_heads
        self.preempt_margin = preempt_margin   # full plans: a head starts now where preempting pays (reservation.py)
        # reservations: drain the nodes whose occupants have held devices the least, and clear for a
        # head only occupants that have held devices more than `clear_factor` times as long as it
        self.drain_by_held = drain_by_held
        self.clear_factor = clear_factor
        self.heads: tuple[str, ...] = ()   # gang jobs holding a reservation (`reservation.py`)
        # full plans: a waiting gang job never displaces a running one (`gangkeep.py`)
        self.keep_gangs = keep_gangs
        # full plans: a gang job that fits nowhere starts where moving small jobs into free devices
        # elsewhere makes room (`reservation._defrag`)
        self.defrag = defrag
        # full plans: the anti-swap rules (clear_factor, keep_gangs: the reservation's clearing and the
        # plan filter alike) stop sparing a running job of the waiting job's tier or lower once the waiting
        # job has waited `yield_after_s` since it last stopped and the running one has run longer than
        # `yield_ratio` times that since it last started (`reservation._yielding`; not the loop's rule)
        self.yield_after_s = yield_after_s
        self.yield_ratio = yield_ratio
        # full plans: a job the plan preempted for a change the plan filter undid keeps running where its
        # devices are still free (`gangkeep.keep_running_gangs`, `restore`; in the loop's rule: `event_options`)
        self.keep_restores = keep_restores

    def decide(self, request: PlanRequest, state: LoopState) -> PlanResponse:
        resp = self._decide(request, state)
        if not self.keep_gangs or request.policy.mode == "backfill" or resp.status == "infeasible":
            return resp
        from executor.actions import response_from_placements
        from executor.schedulers.gangkeep import keep_running_gangs

        placed = {a.job: Placement(cluster=a.cluster, accelerator=a.accelerator, nodes=dict(a.nodes))
                  for a in resp.assignments}
        waited, ran = self._spells(state) if self.yield_after_s is not None else (None, None)
        kept = keep_running_gangs(request, placed, waited, ran, self.yield_after_s, self.yield_ratio, self.keep_restores)
        if kept is None:
            return resp
        reasons = {u.job: (u.code or "no_capacity", u.reason) for u in resp.unplaced}
        for jid in placed.keys() - kept.keys():
            reasons[jid] = ("no_capacity", "cpsat: a running gang job keeps the node it would take")
        out = response_from_placements(request, kept, reasons, engine="cpsat", solve_s=resp.solve_s)
        return out.model_copy(update={"status": resp.status})

    def _decide(self, request: PlanRequest, state: LoopState) -> PlanResponse:
        if not self.reserve:
            return self._plan(request)
        from executor.actions import response_from_placements
        from executor.schedulers.reservation import reserve_for_heads

        if not self._gang_waits(request):   # nothing to reserve for (what reserve_for_heads finds, at a glance)
            self.heads = ()
            return self._plan(request)
        held = {jid: state.jobs[jid].run_s for jid in state.active} \
            if self.drain_by_held or self.clear_factor is not None else None
        waited, ran = self._spells(state) if self.yield_after_s is not None else (None, None)
        res = reserve_for_heads(request, self.heads, self.reserve_heads, self.preempt_margin, held,
                                self.drain_by_held, self.clear_factor, self.keep_gangs, self.defrag,
                                waited, ran, self.yield_after_s, self.yield_ratio)
        if res is None:
            self.heads = ()
            return self._plan(request)
        self.heads = tuple(h for h in res.heads if h not in res.started)
        resp = self._plan(res.request)
        if resp.status == "infeasible":
            return self._plan(request)
        placed = {a.job: Placement(cluster=a.cluster, accelerator=a.accelerator, nodes=dict(a.nodes))
                  for a in resp.assignments if a.job not in res.placeholders}
        reasons = {u.job: (u.code or "no_capacity", u.reason) for u in resp.unplaced}
        for h in self.heads:
            reasons[h] = ("no_capacity", "cpsat: waits for the nodes reserved for it to drain")
        out = response_from_placements(request, placed, reasons, engine="cpsat", solve_s=resp.solve_s)
        return out.model_copy(update={"status": resp.status})

    @staticmethod
    def _spells(state: LoopState) -> tuple[dict[str, float], dict[str, float]]:
        """How long each waiting job has waited since it last stopped (or was submitted), and each running
        job has run since it last started: the current spells, not totals, so that after a swap the job
        that yielded has waited exactly as long as the one that took its node has run."""
        now = state.now_s
        waited: dict[str, float] = {}
        ran: dict[str, float] = {}
        for jid in state.active:
            st = state.jobs[jid]
            if st.status == "running":
                ran[jid] = now - (st.last_start_s if st.last_start_s is not None else now)
            else:
                waited[jid] = now - (st.last_stop_s if st.last_stop_s is not None else st.arrival.submit_s)
        return waited, ran

    @staticmethod
    def _gang_waits(request: PlanRequest) -> bool:
        """Whether a job with several devices per replica waits: the only jobs a reservation is for
        (`reservation._pick`, and the heads it picked before), so without one it has nothing to do."""
        return any(j.current is None and j.devices_per_replica > 1 for j in request.jobs)

    def _plan(self, request: PlanRequest) -> PlanResponse:
        from placement import greedy_plan, plan

        if self.fast_path:
            from executor.schedulers.fastpath import optimal_starts

            resp = optimal_starts(request)
            if resp is not None:
                self.fast_plans += 1
                return resp
        return greedy_plan(request) if self.greedy else plan(request)

    def replan_when_quiet(self, state: LoopState) -> bool:
        return state.epochs_since_plan + 1 >= self.replan_every and any(True for _ in state.pending())
