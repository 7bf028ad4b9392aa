"""The canonical objective at pool level, scaled to integers with a known rounding error.

Value less disruption is linear in the replicas of the chosen option; the preemption cost
of a running job is a credit for each of its options; spread (>= 0) is left to the packing.
Coefficients are rounded at a scale K, so a model bound B (integer) proves B / K + slack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from placement.candidates import Options
from placement.cpsat.variables import Variables
from placement.instance import Instance

TARGET_MAX_COEF = 1e8
MAX_OBJECTIVE_REACH = 2.0**60


@dataclass
class Objective:
    scale: float
    const: float          # real-valued constant (minus every running job's preemption cost)
    slack: float          # most the rounding can understate any solution's real value


def set_objective(model: cp_model.CpModel, inst: Instance, opts: Options, v: Variables,
                  jobs_in_model: list[int]) -> Objective:
    pc = np.array([j.preempt_cost for j in inst.jobs])
    subset = v.options
    per_rep = opts.coef[subset]
    keep_total = np.where(opts.keep[subset], opts.coef[subset] * opts.lo[subset], 0.0) + pc[opts.job[subset]]
    biggest = max(float(np.abs(per_rep).max(initial=0.0)), float(np.abs(keep_total).max(initial=0.0)), 1e-9)
    scale = 10.0 ** np.floor(np.log10(TARGET_MAX_COEF / biggest))
    # CP-SAT refuses a model whose objective could overflow int64: where the terms' largest possible
    # sum passes 2**60 (many jobs of many replicas near the request limits), scale further down
    reach = float(np.abs(per_rep * opts.hi[subset]).sum() + np.abs(keep_total).sum() + np.abs(pc).sum()) * scale
    if reach > MAX_OBJECTIVE_REACH:
        scale /= 10.0 ** np.ceil(np.log10(reach / MAX_OBJECTIVE_REACH))
    # the terms written straight into the model's objective, in whole-array passes: what `model.maximize` of
    # their sum writes (variables by index, zero coefficients left out, negated for a maximum), without the
    # expression objects (a fifth of a neighbourhood step's model build on the family's medium requests)
    sub = subset.tolist()
    jobs = opts.job[subset]
    keep = opts.keep[subset]
    xi = np.fromiter((v.x[o].index for o in sub), dtype=np.int64, count=len(sub))
    ni = np.fromiter((v.n[o].index if o in v.n else -1 for o in sub), dtype=np.int64, count=len(sub))
    keep_c = np.rint((opts.coef[subset] * opts.lo[subset] + pc[jobs]) * scale)
    count_c = np.rint(opts.coef[subset] * scale)
    credit_c = np.rint(pc[jobs] * scale)
    credit = ~keep & (pc[jobs] > 0)
    idx = np.concatenate([xi[keep], ni[~keep], xi[credit]])
    coef = np.concatenate([keep_c[keep], count_c[~keep], credit_c[credit]]).astype(np.int64)
    order = np.argsort(idx, kind="stable")
    idx, coef = idx[order], coef[order]
    nz = coef != 0
    if sub:
        proto = model.proto
        proto.clear_objective()
        proto.objective.vars.extend(idx[nz].tolist())
        proto.objective.scaling_factor = -1.0
        proto.objective.coeffs.extend((-coef[nz]).tolist())
    else:
        model.maximize(0)
    hi_of_job: dict[int, int] = {}
    for j, h in zip(jobs.tolist(), opts.hi[subset].tolist()):
        hi_of_job[j] = max(hi_of_job.get(j, 0), int(h))
    # each chosen option has at most one count term (error <= 0.5 * hi) and one literal term (<= 0.5)
    slack_units = sum(0.5 * (h + 1) for h in hi_of_job.values())
    const = -float(pc[jobs_in_model].sum()) if jobs_in_model else 0.0
    return Objective(scale, const, slack_units / scale)
