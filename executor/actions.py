"""Turn a set of new placements into a contract response (actions by the contract's rules).

The baseline policies (fifo, las) decide placements themselves; this gives their decisions the same
shape the planner returns, so the executor applies every policy's output the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from models import Action, Assignment, Placement, PlanRequest, PlanResponse, Unplaced
from placement.contract import action_kind


def response_from_placements(request: PlanRequest, placed: Mapping[str, Placement],
                             reasons: Mapping[str, tuple[str, str]] | None = None,
                             engine: str = "baseline", solve_s: float = 0.0) -> PlanResponse:
    """A `feasible` response whose assignments are `placed`; every other job is unplaced with its reason
    (`reasons[job] = (code, text)`, default `no_capacity`)."""
    reasons = reasons or {}
    assignments: list[Assignment] = []
    actions: list[Action] = []
    unplaced: list[Unplaced] = []
    for job in request.jobs:
        new = placed.get(job.id)
        kind = (action_kind(job.current) if new is None
                else action_kind(job.current, new.cluster, new.accelerator, new.nodes))
        if kind is not None:
            actions.append(Action(job=job.id, kind=kind, from_=job.current, to=new))
        if new is None:
            code, text = reasons.get(job.id, ("no_capacity", f"{engine}: no room for the job this epoch"))
            unplaced.append(Unplaced.model_construct(job=job.id, reason=text, code=code))
        else:   # built from a validated Placement: nothing left to check (a replay builds thousands)
            assignments.append(Assignment.model_construct(job=job.id, cluster=new.cluster,
                                                          accelerator=new.accelerator, nodes=dict(new.nodes)))
    return PlanResponse(status="feasible", objective=None, bound=None, gap=None, breakdown=None,
                        solve_s=solve_s, assignments=assignments, actions=actions, unplaced=unplaced)
