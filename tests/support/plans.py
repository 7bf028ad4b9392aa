"""Helpers for deciding one plan outside the loop: a loop state for a request, a placement on
cluster "a", and a plan's node maps checked by the independent checker."""

from __future__ import annotations

from executor.loop import Arrival, JobState, LoopState
from tests.support import checker
from tests.support.requests import parsed


def on(node: str, replicas: int) -> dict:
    """A `current` placement of `replicas` on `node` of cluster "a" (H100)."""
    return {"cluster": "a", "accelerator": "H100", "nodes": {node: replicas}}


def state_for(data: dict, attained: dict[str, float] | None = None) -> LoopState:
    """Jobs submitted one second apart in the request's order; running where they have `current`."""
    req = parsed(data)
    st = LoopState(now_s=0.0, epoch_s=300.0, region_of={"a": "us"})
    for k, j in enumerate(req.jobs):
        st.jobs[j.id] = JobState(arrival=Arrival(float(k), j, 1e6), admitted_s=float(k),
                                 status="running" if j.current else "pending", placement=j.current,
                                 attained_device_s=(attained or {}).get(j.id, 0.0))
        st.active[j.id] = None
    return st


def node_maps(data: dict, resp) -> dict[str, dict[str, int]]:
    """Each placed job's nodes, the plan's assignments valid for `data` by the independent checker."""
    pc = checker.require()
    bad, _obj, _br, _acts = pc.score(pc.World(data), resp.model_dump(mode="json", by_alias=True)["assignments"])
    assert bad == []
    return {a.job: dict(a.nodes) for a in resp.assignments}
