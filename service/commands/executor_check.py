"""`meridian executor-check [--exact]`: does preemption, resizing and migration leave training unchanged?

Trains one job (W = 4 logical ranks, about 10 M parameters, AdamW, float32, 200 steps) uninterrupted and
through a preemption at the same r, resizes 4 -> 2 -> 1 -> 4 and a migrate, each a real
SIGTERM -> checkpoint -> relaunch cycle, and prints one JSON line with the parameter differences and
the measured pauses. Exit 0 when the targets hold: exact mode bitwise equal; default mode equal across
the same-r preemption and within 1e-6 relative after the resizes.
"""

from __future__ import annotations

import argparse
import json
import sys

DEFAULT_REL_TOLERANCE = 1e-6
DEFAULT_RAY_NODES = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("executor-check", help="train one job uninterrupted and through preempt/resize/migrate; "
                       "compare the parameters")
    p.add_argument("--exact", action="store_true", help="fixed-order gradient reduction: require bitwise equality")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--hidden", type=int, default=None, help="hidden width (default 2176: about 10 M parameters)")
    p.add_argument("--reduce-dtype", choices=("float64", "float32"), default="float64",
                   help="default mode: accumulate and all-reduce gradients in this type (default float64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("torch", "ray"), default="torch",
                   help="torch: torchrun workers on this host (default); ray: the Ray executor on --nodes Ray nodes "
                        "(preempt, resizes across nodes, a move, a migrate between regions)")
    p.add_argument("--nodes", type=int, default=None, help="--backend ray: fleet nodes a0..a{N-2} (region-a) and "
                   f"b0 (region-b), default {DEFAULT_RAY_NODES}")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="--backend ray: join this cluster (nodes advertising meridian_node_a0 ... b0); default: a "
                        "local cluster of --nodes Ray nodes, stopped at the end")
    p.add_argument("--workdir", default=None, help="keep checkpoints and worker logs here (default: a temporary "
                   "folder, removed afterwards)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from service.cli import UsageError

    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("needs torch: .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e '.[executor]'") from None
    from executor.train.check import run_check
    from executor.train.launch import drain
    from executor.train.spec import TrainSpec

    if args.ray is not None and args.backend != "ray":
        raise UsageError("--ray ADDRESS needs --backend ray")
    if args.nodes is not None and args.backend != "ray":
        raise UsageError("--nodes N needs --backend ray (the torch check runs torchrun workers on this host)")
    if args.nodes is None:
        args.nodes = DEFAULT_RAY_NODES
    if args.backend == "ray" and args.nodes < 2:
        raise UsageError(f"--nodes must be at least 2 (one per region), got {args.nodes}")
    if args.steps < 20:
        raise UsageError(f"--steps must be at least 20 (the schedule has 5 actions), got {args.steps}")
    fields = {"steps": args.steps, "exact": args.exact, "seed": args.seed, "reduce_dtype": args.reduce_dtype}
    if args.hidden is not None:
        fields["hidden"] = args.hidden
    try:
        spec = TrainSpec(**fields)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    work = None
    if args.workdir:
        from datasets.files import InputError, check_writable_dir

        work = Path(args.workdir)
        if work.is_dir() and any(work.iterdir()):
            raise UsageError(f"--workdir {args.workdir} exists and is not empty")
        try:
            check_writable_dir(args.workdir)
        except InputError as exc:
            raise UsageError(f"--workdir {args.workdir}: {exc}") from None
    mode = "exact" if spec.exact else f"default ({spec.reduce_dtype} all-reduce)"
    where = f"{args.nodes} Ray nodes" if args.backend == "ray" else "torchrun"
    print(f"executor-check: {mode} mode, W={spec.world_size}, "
          f"{spec.params():,} parameters, {spec.steps} steps, {where}", file=sys.stderr)
    def say(m: str) -> None:
        print(f"  {m}", file=sys.stderr, flush=True)

    try:
        if args.backend == "ray":
            result = _ray_check(args, spec, work, say, UsageError)
        else:
            result = run_check(spec, work_dir=work, log=say)
    finally:
        drain()
    result["pass"] = passes(result)
    print(json.dumps(result))
    return 0 if result["pass"] else 1


def _ray_check(args: argparse.Namespace, spec, work, say, usage_error: type[Exception]) -> dict:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise usage_error("--backend ray needs Ray: .venv/bin/pip install -e '.[ray]'") from None
    from executor.ray_check import fleet_node_names, run_ray_check
    from executor.ray_cluster import ray_for_fleet

    with ray_for_fleet(fleet_node_names(args.nodes), args.ray):
        return run_ray_check(spec, nodes=args.nodes, work_dir=work, log=say)


def passes(result: dict) -> bool:
    """The issue's targets: exact is bitwise; default is bitwise across same-r restarts, 1e-6 relative overall."""
    if result["mode"] == "exact":
        return result["max_abs_param_diff"] == 0 and all(p["max_abs_param_diff"] == 0 for p in result["pauses"])
    same_r = _same_r_prefix(result["pauses"])
    return (all(p["max_abs_param_diff"] == 0 for p in same_r)
            and result["max_rel_param_diff"] <= DEFAULT_REL_TOLERANCE)


def _same_r_prefix(pauses: list[dict]) -> list[dict]:
    """The checkpoints taken before the job first ran on another worker count (all at the starting r)."""
    out = []
    for p in pauses:
        out.append(p)
        if p["from_workers"] != p["to_workers"]:
            break
    return out
