"""Shared by the engine's tests: building requests, and holding plans against the contract."""

from __future__ import annotations

import copy
from typing import Any

from models import PlanRequest, PlanResponse, parse_request
from placement.verify import violations
from tests.support import checker

plancheck = checker.load()


def fleet(*clusters: dict, regions=("us",), links=(), down=()) -> dict:
    return {"regions": [{"name": r} for r in regions], "links": [dict(l) for l in links],
            "clusters": list(clusters), "down_nodes": list(down)}


def cluster(name: str, region: str, *groups: tuple[str, int, str, int]) -> dict:
    return {"name": name, "region": region,
            "node_groups": [{"prefix": p, "count": c, "accelerator": a, "devices": d} for p, c, a, d in groups]}


def job(id: str, lo: int = 1, hi: int | None = None, speed: dict | None = None, **kw: Any) -> dict:
    out = {"id": id, "replicas": {"min": lo, "max": hi if hi is not None else lo}, "speed": speed or {"H100": 1.0}}
    out.update(kw)
    return out


def request(fleet: dict, jobs: list[dict], **kw: Any) -> dict:
    out = {"fleet": fleet, "jobs": jobs}
    policy = kw.pop("policy", {})
    policy.setdefault("time_limit_s", 2)
    policy.setdefault("deterministic", True)
    out["policy"] = policy
    out.update(kw)
    return out


def check(data: dict, resp: PlanResponse) -> None:
    """The plan obeys the contract by the project's verifier and, when present, the independent checker."""
    req = parse_request(copy.deepcopy(data))
    v = violations(req, resp)
    assert not v, v
    if plancheck is None or resp.status == "infeasible":
        return
    w = plancheck.World(data)
    raw = resp.model_dump(mode="json", by_alias=True)
    bad, obj, br, acts = plancheck.score(w, raw["assignments"])
    assert not bad, bad
    assert abs(obj - resp.objective) <= 1e-6 * max(1.0, abs(obj))
    for k in br:
        assert abs(br[k] - raw["breakdown"][k]) <= 1e-6 * max(1.0, abs(br[k]))
    norm = lambda p: None if p is None else (p["cluster"], p["accelerator"], tuple(sorted(p["nodes"].items())))
    mine = {k: (x[0], norm(x[1] if not hasattr(x[1], "model_dump") else x[1].model_dump()), norm(x[2])) for k, x in acts.items()}
    theirs = {a["job"]: (a["kind"], norm(a["from"]), norm(a["to"])) for a in raw["actions"]}
    assert mine == theirs
    lp, _status = plancheck.lp_bound(w)
    if lp is not None:
        assert resp.objective <= lp + 1e-6 * max(1.0, abs(lp))


def parsed(data: dict) -> PlanRequest:
    return parse_request(copy.deepcopy(data))
