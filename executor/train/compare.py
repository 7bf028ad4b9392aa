"""Parameter differences between two checkpoints: the equivalence figures of `executor-check`."""

from __future__ import annotations

from pathlib import Path

from executor.train import checkpoint


def load_any(where: Path | str) -> tuple[dict, dict]:
    """(meta, state) of a checkpoint folder, or of a checkpoint in an fsspec location (`URL/ckpt-<step>`)."""
    from executor.train.stores import is_url, open_store

    if is_url(where):
        root, _, name = str(where).rstrip("/").rpartition("/")
        return open_store(root).load(int(name[len("ckpt-"):]))
    return checkpoint.load(Path(where))


def param_diff(a: Path | str, b: Path | str) -> dict:
    """max |a - b| over all parameters, and that over the largest |a| (the relative figure); each a
    checkpoint folder or a URL (`executor.train.stores`)."""
    _, sa = load_any(a)
    _, sb = load_any(b)
    ma, mb = sa["model"], sb["model"]
    if ma.keys() != mb.keys():
        raise ValueError(f"{a} and {b} hold different parameters")
    max_abs = max(float((ma[k] - mb[k]).abs().max()) for k in ma)
    scale = max(float(ma[k].abs().max()) for k in ma)
    exact_optim = all(
        bool((sa["optim"]["state"][k][s] == sb["optim"]["state"][k][s]).all())
        for k in sa["optim"]["state"] for s in ("step", "exp_avg", "exp_avg_sq")
    ) and sa["optim"]["state"].keys() == sb["optim"]["state"].keys()
    return {"max_abs_param_diff": max_abs, "max_rel_param_diff": max_abs / scale if scale else 0.0,
            "optimizer_state_equal": exact_optim, "step": int(sa["step"])}
