"""Decision variables: per option a presence literal, per changing option a replica count."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from placement.candidates import Options


@dataclass
class Variables:
    options: np.ndarray                       # option indices in the model
    x: dict[int, cp_model.IntVar]             # option -> chosen
    n: dict[int, cp_model.IntVar]             # change option -> replicas (keep options: fixed r0 * x)


def make_variables(model: cp_model.CpModel, opts: Options, subset: np.ndarray,
                   allowed: list[np.ndarray | None] | None = None) -> Variables:
    """`allowed[j]` (contract v1.1, sorted) narrows job j's count variables to 0 and its listed counts."""
    x: dict[int, cp_model.IntVar] = {}
    n: dict[int, cp_model.IntVar] = {}
    for o in subset.tolist():
        x[o] = model.new_bool_var(f"x{o}")
        if not opts.keep[o]:
            al = allowed[int(opts.job[o])] if allowed is not None else None
            if al is None:
                n[o] = model.new_int_var(0, int(opts.hi[o]), f"n{o}")
            else:
                vals = [0] + [int(a) for a in al if opts.lo[o] <= a <= opts.hi[o]]
                n[o] = model.new_int_var_from_domain(cp_model.Domain.from_values(vals), f"n{o}")
    return Variables(subset, x, n)


def replicas_expr(opts: Options, v: Variables, o: int) -> cp_model.LinearExprT:
    """Replicas option `o` places: its count variable, or r0 * x for a keep."""
    return v.n[o] if o in v.n else int(opts.lo[o]) * v.x[o]
