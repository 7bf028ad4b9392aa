"""The next epoch's request, as a control plane would send it after applying a plan: jobs run where the
plan put them, some finish, some arrive. What the re-planning benchmark and tests plan warm.

Works on the contract's JSON (dicts), so it serves any request, generated or real.
"""

from __future__ import annotations

import copy
import random
from typing import Any


def applied(request: dict, response: dict) -> dict:
    """`request` after `response`'s plan was carried out: every assigned job runs on its assignment,
    every other job waits, one that was running keeping its checkpoint in the region it ran in."""
    out = copy.deepcopy(request)
    region_of = {c["name"]: c["region"] for c in out["fleet"]["clusters"]}
    placed = {a["job"]: a for a in response.get("assignments") or []}
    for job in out["jobs"]:
        a = placed.get(job["id"])
        cur = job.get("current")
        if a is not None:
            job["current"] = {"cluster": a["cluster"], "accelerator": a["accelerator"], "nodes": dict(a["nodes"])}
            job.pop("checkpoint_region", None)
        else:
            if cur is not None:
                job["checkpoint_region"] = region_of[cur["cluster"]]
            job["current"] = None
    return out


def next_epoch(request: dict, response: dict, completions: int, arrivals: int, seed: int = 0) -> dict:
    """`applied(request, response)` with `completions` running jobs finished (gone from the request) and
    `arrivals` new waiting jobs, each a copy of a random job of the request under a new id (the request's
    own mix of tenants, tiers, sizes and types). Seeded: the same arguments give the same request."""
    rng = random.Random(seed)
    out = applied(request, response)
    jobs: list[dict[str, Any]] = out["jobs"]
    running = [k for k, j in enumerate(jobs) if j.get("current") is not None]
    gone = set(rng.sample(running, min(completions, len(running))))
    templates = [jobs[k] for k in rng.sample(range(len(jobs)), min(arrivals, len(jobs)))] if jobs else []
    kept = [j for k, j in enumerate(jobs) if k not in gone]
    ids = {j["id"] for j in jobs}
    for n, t in enumerate(templates):
        new = copy.deepcopy(t)
        new["id"] = _fresh(f"{t['id']}+{seed}.{n}", ids)
        new["current"] = None
        new.pop("checkpoint_region", None)
        kept.append(new)
    out["jobs"] = kept
    return out


def _fresh(name: str, taken: set[str]) -> str:
    k = 0
    out = name
    while out in taken:
        k += 1
        out = f"{name}.{k}"
    taken.add(out)
    return out
