"""The hard constraints of contract v1, checked on a finished response.

The engine builds plans valid by construction; this is the project's own second look (the
independent checker lives outside the project). The test suite runs it on every plan it makes
(`tests/support/requests.py`); the service and the replay do not call it, since a plan is scored
by the same arithmetic it would re-check. It returns violations as sentences; an empty list means valid.
"""

from __future__ import annotations

import math
from collections import defaultdict

from models.request import PlanRequest
from models.response import PlanResponse
from placement.backfill import is_backfill, pinned_jobs
from placement.contract import transfer_s
from placement.instance import compile_instance
from placement.score import score


def violations(req: PlanRequest, resp: PlanResponse) -> list[str]:
    """Every broken hard constraint, and every disagreement between the response and the contract's
    arithmetic (objective, breakdown, actions, one entry per job)."""
    if resp.status == "infeasible":
        return [] if not resp.assignments else ["an infeasible response carries assignments"]
    inst = compile_instance(req)
    out: list[str] = []
    jobs = {i.job.id: i for i in inst.jobs}
    placed: dict[int, tuple[str, str, dict[str, int]]] = {}
    used: dict[int, int] = defaultdict(int)
    quota_use: dict[tuple[str, str], int] = defaultdict(int)
    moved_gb = 0.0
    for a in resp.assignments:
        info = jobs.get(a.job)
        if info is None:
            out.append(f"unknown job {a.job}")
            continue
        if info.index in placed:
            out.append(f"{a.job} assigned twice")
            continue
        placed[info.index] = (a.cluster, a.accelerator, dict(a.nodes))
        job = info.job
        region = inst.cluster_region.get(a.cluster)
        if region is None:
            out.append(f"{a.job}: unknown cluster {a.cluster}")
            continue
        if a.accelerator not in job.speed:
            out.append(f"{a.job}: accelerator {a.accelerator} not in its speed")
        if job.regions is not None and region not in job.regions:
            out.append(f"{a.job}: region {region} not allowed")
        r = 0
        for n, k in a.nodes.items():
            idx = inst.node_index.get(n)
            if idx is None:
                out.append(f"{a.job}: unknown node {n}")
                continue
            if not (isinstance(k, int) and k > 0):
                out.append(f"{a.job}: bad replica count {k!r} on {n}")
                continue
            r += k
            if inst.node_cluster[idx] != a.cluster or inst.node_accel[idx] != a.accelerator:
                out.append(f"{a.job}: node {n} is not {a.cluster}/{a.accelerator}")
            if not inst.node_up[idx]:
                out.append(f"{a.job}: node {n} is down")
            used[idx] += k * info.dpr
        if not job.replicas.min <= r <= job.replicas.max:
            out.append(f"{a.job}: {r} replicas outside [{job.replicas.min}, {job.replicas.max}]")
        elif not job.replicas.grants(r):
            out.append(f"{a.job}: {r} replicas not in allowed {job.replicas.allowed}")
        quota_use[info.key] += r * info.dpr
        if info.cur_region is not None and info.cur_region != region:
            if transfer_s(inst.fleet, job.checkpoint_gb, info.cur_region, region) is None:
                out.append(f"{a.job}: no link from {info.cur_region} to {region}")
            moved_gb += job.checkpoint_gb
    for idx, u in used.items():
        if u > inst.node_devices[idx]:
            out.append(f"node {inst.node_names[idx]} over capacity: {u} > {inst.node_devices[idx]}")
    for key, cap in inst.quotas.items():
        if quota_use[key] > cap:
            out.append(f"quota {key[0]}/{key[1]} exceeded: {quota_use[key]} > {cap}")
    if inst.budget_gb is not None and moved_gb > inst.budget_gb * (1 + 1e-9) + 1e-9:
        out.append(f"migration budget exceeded: {moved_gb} > {inst.budget_gb}")
    for info in inst.jobs:
        if info.protected and info.index not in placed:
            out.append(f"{info.job.id}: protected premium job not placed")
    if is_backfill(inst):      # v1.1: a backfill plan keeps every pinned running job exactly
        for j in pinned_jobs(inst).nonzero()[0]:
            info = inst.jobs[int(j)]
            cur = info.job.current
            if placed.get(info.index) != (cur.cluster, cur.accelerator, dict(cur.nodes)):
                out.append(f"{info.job.id}: a backfill plan changes a running job that must stay")
    ids = [a.job for a in resp.assignments] + [u.job for u in resp.unplaced]
    if sorted(ids) != sorted(jobs):
        out.append("assignments and unplaced do not list every job exactly once")
    if out:
        return out
    sc = score(inst, placed)
    for name, mine, theirs in (("objective", sc.objective, resp.objective),
                               ("value", sc.value, resp.breakdown.value if resp.breakdown else None),
                               ("disruption", sc.disruption, resp.breakdown.disruption if resp.breakdown else None),
                               ("spread", sc.spread, resp.breakdown.spread if resp.breakdown else None)):
        if theirs is None or not math.isclose(mine, theirs, rel_tol=1e-6, abs_tol=1e-6):
            out.append(f"{name} reported {theirs}, the contract computes {mine}")
    want = {a.job: (a.kind, a.from_, a.to) for a in sc.actions}
    got = {a.job: (a.kind, a.from_, a.to) for a in resp.actions}
    if want != got:
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        out.append(f"actions differ from the contract's for {diff[:5]}")
    if resp.bound is not None and resp.objective is not None and resp.bound < resp.objective - 1e-6 * max(1, abs(resp.objective)):
        out.append(f"bound {resp.bound} below the plan's objective {resp.objective}")
    if resp.status == "optimal" and (resp.gap is None or resp.gap > 1e-6):
        out.append(f"status optimal with gap {resp.gap}")
    return out
