"""A node-level neighbourhood: one pool's nodes re-planned exactly by CP-SAT.

Why: a lumpy gang (replicas of 8 devices) gets whole nodes only where the small running jobs on
them move or stop; a pool-level model cannot see which nodes those are, and packing its answer
afterwards fails on exactly those nodes. Here every freed job chooses, node by node, within one
pool: keep its current node map (when it is in the pool), a new node map there, its incumbent
placement elsewhere (unchanged), or nothing; every other job stays on its nodes. The answer is a
node-level plan: committed as is, no repacking.
"""

from __future__ import annotations

import math

import numpy as np

from placement.candidates import Options
from placement.instance import Instance
from placement.packing import Packing
from placement.score import job_terms
from placement.stop import safety_s

SCALE_MAX = 1e8


def node_step(inst: Instance, opts: Options, base: Packing, pool: int, node_list: list[int], free: set[int],
              seconds: float, deterministic: bool) -> Packing | None:
    """`base` with the jobs in `free` re-planned on `node_list` (nodes of `pool`; a freed job placed
    in the pool must sit only on them), or left where they are, or unplaced; None when CP-SAT
    finds nothing."""
    from ortools.sat.python import cp_model  # here: OR-Tools brings pandas, 0.2 s a CLI plan never needs

    p = inst.pools[pool]
    nodes = np.asarray(sorted(node_list), dtype=np.int64)
    pos = {int(n): i for i, n in enumerate(nodes.tolist())}
    room = base.free[nodes].copy()
    for j in free:                       # what the freed jobs hold on these nodes comes back
        if j in base.choice and int(opts.pool[base.choice[j]]) == pool:
            if not set(base.nodes[j]) <= set(pos):
                return None
            for n, k in base.nodes[j].items():
                room[pos[n]] += k * inst.jobs[j].dpr
    model = cp_model.CpModel()
    alts: dict[int, list[tuple[str, int, object, dict]]] = {}   # job -> [(kind, option, literal, extra)]
    terms: list[tuple[float, object]] = []
    node_load: list[list] = [[] for _ in nodes]
    quota_add: dict[tuple[str, str], list] = {}
    mig_add: list = []
    for j in sorted(free):
        info = inst.jobs[j]
        lst = []
        inc_o = base.choice.get(j)
        if inc_o is not None and int(opts.pool[inc_o]) != pool:     # stays where the incumbent has it
            lit = model.new_bool_var(f"s{j}")
            v, d, s = job_terms(inst, j, base.placement_of(j))
            lst.append(("stay", inc_o, lit, {"nodes": dict(base.nodes[j]), "value": v - d - s}))
        for o in opts.by_job[j].tolist():
            if int(opts.pool[o]) != pool:
                continue
            lit = model.new_bool_var(f"x{o}")
            if opts.keep[o]:
                if not set(info.cur_nodes) <= set(pos):
                    continue
                got = (p.cluster, p.accelerator, {inst.node_names[n]: k for n, k in info.cur_nodes.items()})
                v, d, s = job_terms(inst, j, got)
                lst.append(("keep", o, lit, {"nodes": dict(info.cur_nodes), "value": v - d - s}))
            else:
                per_node = {i: int(room[i] // info.dpr) for i in range(len(nodes)) if room[i] >= info.dpr}
                if sum(per_node.values()) < int(opts.lo[o]):
                    model.add(lit == 0)
                    continue
                y = {i: model.new_int_var(0, min(c, int(opts.hi[o])), f"y{o}_{i}") for i, c in per_node.items()}
                cnt = sum(y.values())
                if info.allowed is not None:   # contract v1.1: the count is one of the listed ones
                    listed = [0] + [int(a) for a in info.allowed if opts.lo[o] <= a <= opts.hi[o]]
                    c = model.new_int_var_from_domain(cp_model.Domain.from_values(listed), f"c{o}")
                    model.add(c == cnt)
                    cnt = c
                    hints_c = c
                else:
                    hints_c = None
                model.add(cnt >= int(opts.lo[o])).only_enforce_if(lit)
                model.add(cnt <= int(opts.hi[o]) * lit)
                per = p.dmax // info.dpr
                sp = inst.spread_penalty * info.weight * info.dpr * info.job.speed[p.accelerator]
                u = {}
                if sp > 0 and per > 0:
                    u = {i: model.new_bool_var(f"u{o}_{i}") for i in y}
                    for i, yi in y.items():
                        model.add(yi <= per_node[i] * u[i])
                    m = model.new_int_var(0, math.ceil(int(opts.hi[o]) / per), f"m{o}")
                    model.add(per * m <= cnt + (per - 1) * lit)
                    terms.append((-sp, sum(u.values()) - m))
                terms.append((float(opts.coef[o]), cnt))
                lst.append(("move", o, lit, {"y": y, "u": u, "m": m if u else None, "per": per, "c": hints_c}))
        if not lst:
            continue
        lits = [a[2] for a in lst]
        if info.protected:
            model.add_exactly_one(lits)
        else:
            model.add_at_most_one(lits)
        pc = info.preempt_cost
        for kind, o, lit, extra in lst:
            if kind in ("stay", "keep"):
                terms.append((extra["value"] + pc, lit))
            else:
                terms.append((pc, lit))
                for i, yv in extra["y"].items():
                    node_load[i].append(info.dpr * yv)
            dev = (info.dpr * sum(extra["y"].values())) if kind == "move" else \
                info.dpr * sum(extra["nodes"].values()) * lit
            if kind == "keep":
                for n, k in extra["nodes"].items():
                    if n in pos:
                        node_load[pos[n]].append(info.dpr * k * lit)
            if info.key in inst.quotas:
                quota_add.setdefault(info.key, []).append(dev)
            if opts.mig_gb[o] > 0:
                mig_add.append((float(opts.mig_gb[o]), lit))
        alts[j] = lst
    if not alts:
        return None
    for i, load in enumerate(node_load):
        if load:
            model.add(sum(load) <= int(room[i]))
    for key, dev in quota_add.items():
        held = base.quota_used[key] - sum(sum(base.nodes[j].values()) * inst.jobs[j].dpr
                                         for j in alts if j in base.choice and inst.jobs[j].key == key)
        model.add(sum(dev) <= int(inst.quotas[key] - held))
    if inst.budget_gb is not None and mig_add:
        held = base.mig_used - sum(float(opts.mig_gb[base.choice[j]]) for j in alts if j in base.choice)
        cap = math.floor((inst.budget_gb - held) * 1000 + 1e-6)
        model.add(sum(math.ceil(gb * 1000 - 1e-6) * lit for gb, lit in mig_add) <= cap)
    biggest = max([abs(c) for c, _ in terms] + [1e-9])
    scale = 10.0 ** math.floor(math.log10(SCALE_MAX / biggest / 40))
    model.maximize(sum(round(c * scale) * e for c, e in terms))
    for j, lst in alts.items():          # the incumbent as a hint
        inc_o = base.choice.get(j)
        for kind, o, lit, extra in lst:
            on = inc_o == o
            model.add_hint(lit, on)
            if kind == "move":
                got = {i: (base.nodes[j].get(int(nodes[i]), 0) if on else 0) for i in extra["y"]}
                for i, yv in extra["y"].items():
                    model.add_hint(yv, got[i])
                for i, uv in extra["u"].items():   # a complete hint: CP-SAT starts from it
                    model.add_hint(uv, got[i] > 0)
                total = sum(got.values())
                if extra["m"] is not None:
                    model.add_hint(extra["m"], (total + extra["per"] - 1) // extra["per"] if on else 0)
                if extra["c"] is not None:
                    model.add_hint(extra["c"], total)
    solver = cp_model.CpSolver()
    prm = solver.parameters
    prm.num_workers = 1
    if deterministic:
        prm.max_deterministic_time = max(0.02, seconds)
        prm.max_time_in_seconds = safety_s(max(0.02, seconds))
    else:
        prm.max_time_in_seconds = max(0.01, seconds)
    prm.log_search_progress = False
    # no presolve: on a pool of 50-70 nodes it took the whole of a 0.1-0.5 s budget (affine relations over
    # the node variables) and the step ended with nothing; without it the complete hint above is the first
    # solution at once and the search improves on it (medium family seed 29: +12.8 on one pool in 0.1 s)
    prm.cp_model_presolve = False
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    pk = base.copy()
    for j in alts:
        pk.release(j)
        pk.unplace(j)
    for j, lst in alts.items():
        for kind, o, lit, extra in lst:
            if not solver.boolean_value(lit):
                continue
            if kind == "move":
                placement = {int(nodes[i]): int(solver.value(yv)) for i, yv in extra["y"].items() if solver.value(yv) > 0}
            else:
                placement = dict(extra["nodes"])
            pk._commit(j, o, placement)
    return pk
