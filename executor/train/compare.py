"""Parameter differences between two checkpoints: the equivalence figures of `executor-check`."""

from __future__ import annotations

from pathlib import Path

from executor.train import checkpoint


def param_diff(a: Path, b: Path) -> dict:
    """max |a - b| over all parameters, and that over the largest |a| (the relative figure)."""
    _, sa = checkpoint.load(a)
    _, sb = checkpoint.load(b)
    ma, mb = sa["model"], sb["model"]
    if ma.keys() != mb.keys():
        raise ValueError(f"{a} and {b} hold different parameters")
    max_abs = max(float((ma[k] - mb[k]).abs().max()) for k in ma)
    scale = max(float(ma[k].abs().max()) for k in ma)
    exact_optim = all(
        bool((sa["optim"]["state"][k][s] == sb["optim"]["state"][k][s]).all())
        for k in sa["optim"]["state"] for s in ("exp_avg", "exp_avg_sq")
    )
    return {"max_abs_param_diff": max_abs, "max_rel_param_diff": max_abs / scale if scale else 0.0,
            "optimizer_state_equal": exact_optim, "step": int(sa["step"])}
