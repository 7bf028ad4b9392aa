"""The LP relaxation at planet size by column generation on one warm HiGHS model.

At 20,000 jobs and 300,000-450,000 options the full LP does not solve in minutes, and a restricted
LP over a few options per job, rebuilt and solved cold for each round of column generation, got
two or three rounds in the time there is: its plan (the LP rounding) then sat 5-8 % below the
checker's region LP on the request family, for want of the columns that carry the optimum.

Here the rows are fixed once (one per job, pool, quota and the migration budget) and columns are
added to the same HiGHS model round after round, so each round starts from the last basis (new
columns enter at zero: the basis stays primal feasible and the primal simplex goes on from it).
An elastic option is two columns, one at its fewest and one at its most replicas: the same
polyhedron as `lo x <= n <= hi x` (its cone has exactly those two rays) with no linking row, so
a column is added alone. Each round prices every option at the LP's duals in one vectorised pass
(`placement.bound.priced_values`) and adds, per job, its best option whose reduced cost is
positive. At any duals the Lagrangian at those prices is a valid bound; once no column prices
out it equals the LP's value.
"""

from __future__ import annotations

import time

import numpy as np

from placement.bound import Bound, _keys, _quiet_highs, _run, lagrangian_value, lp_cost_scale, priced_values
from placement.candidates import Options
from placement.instance import Instance

TOL = 1e-7   # relative reduced cost below which a column does not price out
GROWTH = 1.5   # the second round's solve, measured at planet size, took up to about this many times the first
START_SHARE = 0.8   # a round starts with at least this share of its expected solve left: one cut short by the
                    # limit costs only its time (the last finished round's primal and duals stand)
ROUND_SHARE = 0.2   # a round adds at most this share of the jobs' columns (each job's best pricing out, those
                    # pricing out most first): on the planet family, small rounds reached 0.2 % of the LP's value
                    # in fewer simplex iterations than a column for every job (27k against 34k), each round
                    # about as long as the last (the second had taken up to 2.5 times the first), so a
                    # deadline cuts less


class RestrictedLP:
    """The LP over a growing set of options; rows fixed, columns added, HiGHS's basis kept."""

    def __init__(self, inst: Instance, opts: Options):
        import highspy

        self.inst, self.opts = inst, opts
        n_jobs = len(inst.jobs)
        self.pc = np.array([j.preempt_cost for j in inst.jobs])
        self.prot = np.array([j.protected for j in inst.jobs], dtype=bool)
        keys, jq = _keys(inst)
        self.keys, self.jq = keys, jq
        self.has_budget = inst.budget_gb is not None and bool((opts.mig_gb > 0).any())
        # rows: jobs [0, n_jobs), pools, quotas, the budget
        self.pool_row0 = n_jobs
        self.quota_row0 = n_jobs + len(inst.pools)
        self.budget_row = self.quota_row0 + len(keys)
        n_rows = self.budget_row + (1 if self.has_budget else 0)
        inf = highspy.kHighsInf
        lo = np.full(n_rows, -inf)
        hi = np.empty(n_rows)
        lo[:n_jobs] = np.where(self.prot, 1.0, -inf)
        hi[:n_jobs] = 1.0
        hi[self.pool_row0:self.quota_row0] = [float(p.capacity) for p in inst.pools]
        hi[self.quota_row0:self.budget_row] = [float(inst.quotas[k]) for k in keys]
        if self.has_budget:
            hi[self.budget_row] = float(inst.budget_gb)
        self.n_rows = n_rows
        # the largest cost any column can have sets the scale once (HiGHS works to absolute tolerances)
        span_hi = np.maximum(opts.hi, opts.lo)
        self.scale = lp_cost_scale(np.concatenate((-(self.pc[opts.job] + opts.coef * span_hi), [0.0])))
        self.h = _quiet_highs()
        self.h.setOptionValue("threads", 1)
        self.h.addRows(n_rows, lo, hi, 0, np.zeros(n_rows, dtype=np.int32), np.zeros(0, dtype=np.int32),
                       np.zeros(0))
        self.inside = np.zeros(len(opts), dtype=bool)
        self.col_opt = np.zeros(0, dtype=np.int64)    # per column: its option
        self.col_reps = np.zeros(0, dtype=np.int64)   # per column: its replicas
        self.solved = False

    def add(self, idx: np.ndarray) -> int:
        """Add the options at `idx` not yet in (an elastic change as two columns); returns how many."""
        opts = self.opts
        idx = np.unique(np.asarray(idx, dtype=np.int64))
        idx = idx[~self.inside[idx]]
        if not len(idx):
            return 0
        self.inside[idx] = True
        two = ~opts.keep[idx] & (opts.hi[idx] > opts.lo[idx])
        o = np.concatenate((idx, idx[two]))
        r = np.concatenate((opts.lo[idx], opts.hi[idx][two])).astype(np.int64)
        n = len(o)
        j = opts.job[o]
        dev = (r * opts.dpr[o]).astype(float)
        cost = -(self.pc[j] + opts.coef[o] * r) * self.scale
        q = self.jq[j]
        has_q = q >= 0
        mig = opts.mig_gb[o]
        has_b = (mig > 0) if self.has_budget else np.zeros(n, dtype=bool)
        per = 2 + has_q.astype(np.int64) + has_b.astype(np.int64)   # entries per column
        starts = np.concatenate(([0], np.cumsum(per)[:-1])).astype(np.int64)
        nnz = int(per.sum())
        rows = np.empty(nnz, dtype=np.int64)
        vals = np.empty(nnz)
        rows[starts], vals[starts] = j, 1.0
        rows[starts + 1], vals[starts + 1] = self.pool_row0 + opts.pool[o], dev
        qs = starts[has_q] + 2
        rows[qs], vals[qs] = self.quota_row0 + q[has_q], dev[has_q]
        bs = starts[has_b] + 2 + has_q[has_b]
        rows[bs], vals[bs] = self.budget_row, mig[has_b]
        self.h.addCols(n, cost, np.zeros(n), np.ones(n), nnz, starts.astype(np.int32), rows.astype(np.int32), vals)
        self.col_opt = np.concatenate((self.col_opt, o))
        self.col_reps = np.concatenate((self.col_reps, r))
        return len(idx)

    def solve(self, seconds: float, iterations: int | None = None) -> str:
        """Re-solve from the last basis; the model status ("Optimal", "Infeasible", ...)."""
        # HiGHS's time limit counts the model's run time over every solve so far, not this solve's:
        # set as `seconds`, the third round of column generation was stopped after a fraction of its
        # share, with nothing to show for it
        self.h.setOptionValue("time_limit", self.h.getRunTime() + max(0.05, float(seconds)))
        if iterations is not None:
            self.h.setOptionValue("simplex_iteration_limit", int(iterations))
        _run(self.h)
        status = self.h.modelStatusToString(self.h.getModelStatus())
        self.solved = status == "Optimal"
        return status

    def duals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(job duals, pool prices, quota prices, budget price), all >= 0 in the objective's units."""
        d = -np.asarray(self.h.getSolution().row_dual) / self.scale
        n_jobs = len(self.inst.jobs)
        u = d[:n_jobs]
        pool = np.maximum(0.0, d[self.pool_row0:self.quota_row0])
        quota = np.maximum(0.0, d[self.quota_row0:self.budget_row])
        budget = max(0.0, float(d[self.budget_row])) if self.has_budget else 0.0
        return u, pool, quota, budget

    def primal(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(the LP's value, per option how much it is chosen, per option its replicas)."""
        colv = np.asarray(self.h.getSolution().col_value)
        x = np.zeros(len(self.opts))
        n = np.zeros(len(self.opts))
        np.add.at(x, self.col_opt, colv)
        np.add.at(n, self.col_opt, colv * self.col_reps)
        value = -self.h.getInfo().objective_function_value / self.scale - float(self.pc.sum())
        return value, x, n

    def pricing(self) -> np.ndarray:
        """Options outside the model whose column prices out at the current duals: per job its best, at
        most `ROUND_SHARE` of the jobs (empty: the restricted LP's value is the full LP's)."""
        u, pool, quota, budget = self.duals()
        val, _ = priced_values(self.inst, self.opts, pool, quota, budget)
        rc = val - u[self.opts.job]
        tol = TOL * np.maximum(1.0, np.abs(u[self.opts.job]))
        cand = np.flatnonzero(~self.inside & (rc > tol))
        if not len(cand):
            return cand
        order = cand[np.lexsort((cand, -rc[cand], self.opts.job[cand]))]
        first = np.ones(len(order), dtype=bool)
        first[1:] = self.opts.job[order][1:] != self.opts.job[order][:-1]
        best = order[first]
        most = max(1, int(ROUND_SHARE * len(self.inst.jobs)))
        if len(best) > most:   # those pricing out most, relative to their job's dual
            rel = rc[best] / np.maximum(1.0, np.abs(u[self.opts.job[best]]))
            best = best[np.lexsort((best, -rel))[:most]]
        return best


class ColumnGeneration:
    """Column generation on one `RestrictedLP`, in runs that each stop at a deadline: a later run goes
    on from the last (its columns, basis and last finished round), so the rounds one stage had no time
    for can run later, beside other work (HiGHS releases the GIL while it solves)."""

    def __init__(self, inst: Instance, opts: Options, start: np.ndarray):
        self.inst, self.opts = inst, opts
        self.lp = RestrictedLP(inst, opts)
        self.lp.add(start)
        self.stats = {"rounds": 0, "columns": 0.0, "converged": 0, "lp_value": float("nan")}
        self.last: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self.infeasible = False
        self.priced = True   # the model's columns include every one the last finished round priced out
        self.solve_s = self.price_s = self.expected = 0.0

    @property
    def done(self) -> bool:
        """Nothing more to gain from another run: converged, or the LP is infeasible."""
        return bool(self.stats["converged"]) or self.infeasible

    def run(self, deadline: float, max_rounds: int = 1000) -> None:
        """Rounds until `deadline`, until no column prices out, or after `max_rounds` rounds in all."""
        t0 = time.perf_counter()
        lp = self.lp
        while self.stats["rounds"] < max_rounds and not self.done:
            if not self.priced:   # the last round's duals price the next columns
                if deadline - time.perf_counter() - self.price_s < START_SHARE * self.expected:
                    break   # no time for another round: its pricing would be wasted
                ts = time.perf_counter()
                extra = lp.pricing()
                self.price_s = time.perf_counter() - ts
                self.priced = True
                if not len(extra):   # nothing prices out: the restricted LP's value is the full LP's
                    self.stats["converged"] = 1
                    break
                lp.add(extra)
            # a solve stopped by its time limit gives nothing (the last finished round's primal and duals
            # stand), so a round starts only with a fair share of its expected time left, its pricing included
            left = deadline - time.perf_counter() - self.price_s
            if left <= 0.05 or (self.last is not None and left < START_SHARE * self.expected):
                break
            ts = time.perf_counter()
            status = lp.solve(left)
            self.solve_s = time.perf_counter() - ts
            # the second solve took up to GROWTH times the first; later ones about as long as the last
            self.expected = self.solve_s * (GROWTH if self.stats["rounds"] == 0 else 1.0)
            if status == "Infeasible":
                self.infeasible = True
                break
            if status != "Optimal":
                break
            value, x, n = lp.primal()
            _, pool, quota, budget = lp.duals()
            self.last = (value, x, n, pool, quota, budget)
            self.stats["rounds"] += 1   # after `last`: a reader in another thread that sees the count sees the round
            self.priced = False
        self.stats["columns"] = float(len(lp.col_opt))
        self.stats["seconds"] = round(self.stats.get("seconds", 0.0) + time.perf_counter() - t0, 3)

    def bound(self) -> Bound | None:
        """The LP's value once converged, else the Lagrangian at the last round's duals (valid at any
        prices), with the last round's primal for rounding; None when no solve has finished."""
        inst, opts = self.inst, self.opts
        if self.infeasible:
            return Bound(float("inf"), "lp", np.zeros(len(inst.pools)), infeasible=True)
        if self.last is None:
            return None
        value, x, n, pool, quota, budget = self.last
        self.stats["lp_value"] = value
        if self.stats["converged"]:
            return Bound(value + 1e-7 * max(1.0, abs(value)), "lp", pool, x=x, n=n, quota_prices=quota,
                         budget_price=budget)
        bound_value = lagrangian_value(inst, opts, pool, quota, budget)[0]
        return Bound(bound_value, "lagrangian", pool, x=x, n=n, quota_prices=quota, budget_price=budget)


def colgen_lp(inst: Instance, opts: Options, start: np.ndarray, deadline: float,
              max_rounds: int = 1000) -> tuple[Bound | None, dict[str, float]]:
    """Column generation from the options `start` until `deadline` or until no column prices out.
    Returns the bound (`ColumnGeneration.bound`) and counters (rounds, columns, seconds, converged, the
    restricted LP's value). None when not even the first solve finished."""
    cg = ColumnGeneration(inst, opts, start)
    cg.run(deadline, max_rounds)
    return cg.bound(), cg.stats
