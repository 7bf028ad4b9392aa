"""RENS (relaxation enforced neighbourhood search) on the whole-node-cut model: the integer model with every
column the LP relaxation set integrally fixed there, solved by HiGHS for a short while.

Why: on fleets where the LP's rounding loses much (medium family seed 8: LP 16,407, its rounding packed
15,339), the integer solution closest to the LP is a better start for the search than the rounding, and
with most columns fixed HiGHS finds it in tens of milliseconds where the whole model needs seconds."""

from __future__ import annotations

import numpy as np

from placement.bound import Bound, _run
from placement.candidates import Options
from placement.cut_beside import CutModel, _choice, _loaded, solution_arrays
from placement.instance import Instance

TOL = 1e-6   # an LP value this close to an integer counts as that integer


def rens_choice(inst: Instance, opts: Options, model: CutModel, lp: Bound, seconds: float,
                max_free_jobs: int = 300) -> dict[int, tuple[int, int]] | None:
    """The best integer solution of `model` within the LP's integral part (`lp`: the model's relaxation,
    `cut_lp`'s), job -> (option, replicas); None where HiGHS finds none in `seconds`, or where the LP leaves
    more than `max_free_jobs` jobs fractional (HiGHS checks its time limit between nodes, not while it
    separates cuts at the root: a large model could overrun; the 70 requests of the family and the apart
    generator in that size range have 4-66 fractional option columns and take 3-40 ms)."""
    if lp.x is None or lp.n is None:
        return None
    n_opt = len(opts)
    n_cols = len(model.cost)
    x = np.asarray(lp.x, dtype=float)
    lo = np.zeros(n_cols)
    hi = model.upper.astype(float).copy()
    frac_x = np.abs(x - np.rint(x)) > TOL
    # the jobs the LP is fractional on (an option, or the replicas of one it takes) keep their options with
    # weight free; every other job is fixed as the LP has it
    change = np.flatnonzero(model.n_col_of >= 0)
    nval = np.asarray(lp.n, dtype=float)
    frac_n = np.zeros(n_opt, dtype=bool)
    frac_n[change] = np.abs(nval[change] - np.rint(nval[change])) > TOL
    free_job = np.zeros(len(inst.jobs), dtype=bool)
    free_job[opts.job[frac_x | frac_n]] = True
    if int(free_job.sum()) > max_free_jobs:
        return None
    fixed = ~free_job[opts.job]
    lo[:n_opt] = np.where(fixed, np.rint(x), 0.0)
    hi[:n_opt] = np.where(fixed, np.rint(x), np.where(x > TOL, 1.0, 0.0))
    cols = model.n_col_of[change]
    fix_c = fixed[change]
    # a free job's option may go unchosen (its replicas 0) or take any count of its range
    lo[cols] = np.where(fix_c, np.rint(nval[change]), 0.0)
    hi[cols] = np.where(fix_c, np.rint(nval[change]), np.where(x[change] > TOL, model.upper[cols], 0.0))
    h, _ = _loaded(model, seconds, integer=True)
    h.changeColsBounds(n_cols, np.arange(n_cols, dtype=np.int32), lo, hi)
    h.setOptionValue("mip_rel_gap", 1e-4)   # a start for the search, not a proof
    _run(h)
    info = h.getInfo()
    if info.primal_solution_status < 1:
        return None
    _, option, replicas = solution_arrays(inst, opts, model, np.asarray(h.getSolution().col_value))
    return _choice(option, replicas)
