"""The family mode of bench/plan_scale.py: many seeds of `generate_family` per size, median and
worst gap to the checker's bounds, status counts, peak memory and wall (see plan_scale's docstring).

Each plan runs in a fresh process (plan_scale's worker); the checker validates every plan; its
LP bound (and pool-level MIP bound) depend only on the request, so they are computed once per
request and cached by the request's hash under runs/bench-cache/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from plan_scale import CHECKER, ROOT, run_one

CACHE = pathlib.Path(os.environ.get("MERIDIAN_BENCH_CACHE", ROOT / "runs" / "bench-cache"))
MIP_LIMIT_S = 60.0


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _checker(request_path: str, out_path: str, flags: list[str], timeout: float) -> dict | None:
    try:
        p = subprocess.run([sys.executable, str(CHECKER), request_path, out_path, *flags],
                           check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None


CACHED_ONLY = False


def _own_check(request_path: str, out_path: str) -> dict:
    """Where the independent checker is absent (a user's clone has no ../shared): the project's own
    validation (`placement.verify`), so a plan is still judged, never counted invalid for want of a checker."""
    from models import parse_request_json
    from models.response import PlanResponse
    from placement.verify import violations

    req = parse_request_json(pathlib.Path(request_path).read_bytes())
    resp = PlanResponse.model_validate_json(pathlib.Path(out_path).read_bytes())
    bad = violations(req, resp)
    return {"valid": not bad, "violations": bad[:5]}


def _cached_bound(key: str, kind: str, compute, *args, always: bool = False) -> dict | None:
    """A request-only figure (the checker's LP or MIP bound), computed once per request (`always`:
    even with --cached-only, which spares only the checker's slow bounds)."""
    path = CACHE / f"{key}-{kind}.json"
    if path.exists():
        return json.loads(path.read_text())
    if CACHED_ONLY and not always:
        return None
    val = compute(*args)
    if val is not None:
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(val))
    return val


def _exact_bound(request_path: str, seconds: float) -> dict | None:
    p = subprocess.run([sys.executable, "-m", "placement.exact", request_path, "--time-limit", str(seconds)],
                       check=False, capture_output=True, text=True, timeout=seconds * 3 + 120, cwd=str(ROOT))
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None


def _whole_node_bound(request_path: str, seconds: float) -> dict | None:
    """The pool-level integer model with whole-node cuts (placement.exact.whole_node_bound): a valid
    bound at or below the checker's --mip where kept jobs hold the nodes a gang would need."""
    p = subprocess.run([sys.executable, "-m", "placement.exact", request_path, "--time-limit", str(seconds),
                        "--whole-node-cuts"], check=False, capture_output=True, text=True, timeout=seconds * 3 + 120,
                       cwd=str(ROOT))
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None


def _colgen_bound(request_path: str, seconds: float) -> dict | None:
    """The engine's pool-level LP solved by column generation (placement/colgen.py) until no column
    prices out or `seconds` pass: its value once converged, else the Lagrangian at the last duals;
    either is a valid upper bound, and at planet size the converged LP lies at or below the
    checker's region LP (seed 2: 917,794 against 917,962) and solves in 10-60 s rather than minutes."""
    import time

    import numpy as np

    from models import parse_request_json
    from placement.candidates import build_options
    from placement.colgen import colgen_lp
    from placement.instance import compile_instance

    inst = compile_instance(parse_request_json(pathlib.Path(request_path).read_bytes()))
    opts = build_options(inst)
    start = np.array([b[0] for b in opts.by_job if len(b)], dtype=np.int64)
    got, stats = colgen_lp(inst, opts, start, time.perf_counter() + seconds, max_rounds=10**6)
    if got is None or got.infeasible:
        return None
    return {"bound": got.value, "method": got.method, "converged": stats["converged"], "rounds": stats["rounds"]}


def main() -> None:
    ap = argparse.ArgumentParser(prog="plan_scale.py --family")
    ap.add_argument("sizes", nargs="*", default=["medium", "large", "planet"])
    ap.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5")
    ap.add_argument("--mip", action="store_true", help="also the checker's pool-level MIP bound (within a minute)")
    ap.add_argument("--exact", type=float, default=0.0, help="seconds for the node-level MILP bound (placement.exact)")
    ap.add_argument("--node-cuts", type=float, default=0.0,
                    help="seconds for the pool-level integer bound with whole-node cuts (placement.exact "
                         "--whole-node-cuts, cached); gaps then also to the tighter of it and --mip")
    ap.add_argument("--planners", default="greedy,engine")
    ap.add_argument("--json", default=None, help="write every row here")
    ap.add_argument("--phases", action="store_true", help="also print each plan's stats.phases_s (seconds per stage)")
    ap.add_argument("--lp-ref", type=float, default=0.0,
                    help="seconds for the engine's pool-level LP by column generation to convergence (a valid "
                         "bound, cached; at planet size minutes faster than the checker's region LP)")
    ap.add_argument("--cached-only", action="store_true",
                    help="use the checker's bounds only where cached (never compute one: the planet region LP "
                         "takes minutes per request on a loaded machine); gaps are '-' where none is cached")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="plan every request with this policy.time_limit_s instead of its size's (the moonshot "
                         "runs at 5 s); the cached bounds still apply: they are keyed by the request as generated")
    a = ap.parse_args()
    global CACHED_ONLY
    CACHED_ONLY = a.cached_only
    from datasets.requests import generate_family

    seeds = _seeds(a.seeds)
    planners = a.planners.split(",")
    limit = "" if a.time_limit is None else f"; time limit {a.time_limit:g} s for every request"
    print(f"family: seeds {a.seeds}; {os.cpu_count()} cores; load {_load()}; planners {planners}{limit}")
    if not CHECKER.exists():
        print(f"(no independent checker at {CHECKER}: plans are validated by placement.verify, the project's own; "
              "bounds only where cached; MERIDIAN_CHECKER=PATH names the checker)", flush=True)
    print(f"{'size':7} {'seed':>4} {'planner':7} {'wall_s':>6} {'out_s':>6} {'peak_MiB':>8} {'status':9} {'objective':>12} "
          f"{'bound':>12} {'lp':>12} {'gap_lp':>7} {'gap_mip':>7} {'gap_ex':>7} {'gap_rep':>7} {'valid':>5} load", flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.sizes:
            for seed in seeds:
                data = generate_family(size, seed)
                text = json.dumps(data, sort_keys=True)
                key = f"{size}-{seed}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
                if a.time_limit is not None:
                    data["policy"]["time_limit_s"] = a.time_limit
                    text = json.dumps(data, sort_keys=True)
                rp = os.path.join(tmp, f"{size}-{seed}.json")
                pathlib.Path(rp).write_text(text)
                for mode in planners:
                    op = os.path.join(tmp, f"{size}-{seed}-{mode}.json")
                    load = _load()
                    m = run_one(rp, mode, op)
                    resp = json.loads(pathlib.Path(op).read_text())
                    chk = (_checker(rp, op, [], 600) or {}) if CHECKER.exists() else _own_check(rp, op)
                    lpflag = "--lp-region" if size == "planet" else "--lp"
                    lp = _cached_bound(key, lpflag.strip("-"), _checker, rp, op, [lpflag], 3600)
                    mip = None
                    if a.mip and size != "planet":
                        mip = _cached_bound(key, "mip", _checker, rp, op, ["--mip"], MIP_LIMIT_S + 90)
                    ex = _cached_bound(key, f"exact{a.exact:g}", _exact_bound, rp, a.exact) if a.exact else None
                    wn = _cached_bound(key, f"wholenode{a.node_cuts:g}", _whole_node_bound, rp, a.node_cuts) \
                        if a.node_cuts else None
                    ref = _cached_bound(key, "colgen", _colgen_bound, rp, a.lp_ref, always=True) if a.lp_ref else None
                    obj = resp["objective"]

                    row = {"size": size, "seed": seed, "planner": mode, "wall_s": m["wall_s"], "out_s": m["out_s"],
                           "solve_s": resp.get("solve_s"), "peak_mib": m["peak_mib"],
                           "status": resp["status"], "objective": obj, "bound": resp["bound"],
                           "bound_method": (resp.get("stats") or {}).get("bound_method"),
                           "lp": (lp or {}).get("lp_bound"), "mip": (mip or {}).get("agg_mip_bound"),
                           "exact": (ex or {}).get("bound"), "valid": chk.get("valid"),
                           "bound_ok": chk.get("bound_ok"), "load": load}
                    row["gap_lp"], row["gap_mip"], row["gap_exact"] = (_gap(obj, row[k]) for k in ("lp", "mip", "exact"))
                    row["gap_reported"] = resp.get("gap")
                    row["whole_node"] = (wn or {}).get("bound")
                    tight = [b for b in (row["mip"], row["whole_node"]) if b is not None]
                    row["gap_tight"] = _gap(obj, min(tight)) if tight else None
                    row["lp_ref"] = (ref or {}).get("bound")
                    row["gap_ref"] = _gap(obj, row["lp_ref"])
                    rows.append(row)
                    print(f"{size:7} {seed:4} {mode:7} {m['wall_s']:6.2f} {m['out_s']:6.2f} {m['peak_mib']:8.0f} {resp['status']:9} "
                          f"{obj:12.1f} {resp['bound']:12.1f} {row['lp'] or float('nan'):12.1f} {_pct(row['gap_lp'])} "
                          f"{_pct(row['gap_mip'])} {_pct(row['gap_exact'])} {_pct(row['gap_reported'])} "
                          f"{chk.get('valid', '-')!s:>5} {load}", flush=True)
                    if wn:
                        print(f"        whole-node-cut bound {row['whole_node'] or float('nan'):.1f} ({wn['status']}): "
                              f"gap {_pct(_gap(obj, row['whole_node']))}; to the tighter of it and the MIP "
                              f"{_pct(row['gap_tight'])}", flush=True)
                    if ref:
                        print(f"        pool-level LP by column generation {ref['bound']:.1f} ({ref['method']}, "
                              f"{ref['rounds']} rounds): gap {_pct(row['gap_ref'])}", flush=True)
                    if a.phases:
                        print(f"        phases_s {json.dumps((resp.get('stats') or {}).get('phases_s'))}", flush=True)
    print()
    print(summary(rows, planners))
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(rows, indent=1))


def _gap(obj: float | None, bound: float | None) -> float | None:
    return None if bound is None or obj is None else (bound - obj) / max(abs(bound), 1e-9)


def _pct(g: float | None) -> str:
    return "      -" if g is None else f"{100 * g:6.2f}%"


def _fmt(v: float | None) -> str:
    return f"{100 * v:.2f}%" if v is not None else "-"


def summary(rows: list[dict], planners: list[str]) -> str:
    """Per size and planner: median and worst gap to each bound, status counts, worst memory and wall."""
    out = [(f"{'size':7} {'planner':7} {'seeds':>5} {'gap_lp med':>10} {'worst':>7} {'gap_mip med':>11} {'worst':>7} "
            f"{'(n)':>4} {'gap_rep med':>11} {'worst':>7} {'statuses':24} {'peak_MiB':>8} {'wall max':>8} {'out max':>7} {'invalid':>7}")]
    for size in dict.fromkeys(r["size"] for r in rows):
        for mode in planners:
            rs = [r for r in rows if r["size"] == size and r["planner"] == mode]
            if not rs:
                continue
            glp, gmip, grep = ([r[k] for r in rs if r[k] is not None] for k in ("gap_lp", "gap_mip", "gap_reported"))
            f = _fmt
            st: dict[str, int] = {}
            for r in rs:
                st[r["status"]] = st.get(r["status"], 0) + 1
            out.append(f"{size:7} {mode:7} {len(rs):5} {f(statistics.median(glp) if glp else None):>10} "
                       f"{f(max(glp) if glp else None):>7} {f(statistics.median(gmip) if gmip else None):>11} "
                       f"{f(max(gmip) if gmip else None):>7} {len(gmip):4} "
                       f"{f(statistics.median(grep) if grep else None):>11} {f(max(grep) if grep else None):>7} "
                       f"{' '.join(f'{k}:{v}' for k, v in sorted(st.items())):24} "
                       f"{max(r['peak_mib'] for r in rs):8.0f} {max(r['wall_s'] for r in rs):8.2f} {max(r['out_s'] for r in rs):7.2f} "
                       f"{sum(1 for r in rs if r['valid'] is not True or r['bound_ok'] is False):7}")
    for size in dict.fromkeys(r["size"] for r in rows):
        for mode in planners:
            rs = [r for r in rows if r["size"] == size and r["planner"] == mode and r.get("gap_tight") is not None]
            k = sum(1 for r in rs if r.get("whole_node") is not None)
            if k:
                g = [r["gap_tight"] for r in rs]
                out.append(f"{size:7} {mode:7} gap to the tighter of --mip and the whole-node-cut bound (--node-cuts) "
                           f"median {_fmt(statistics.median(g))}, worst {_fmt(max(g))} ({len(g)} seeds, {k} with "
                           f"the cut bound)")
    for size in dict.fromkeys(r["size"] for r in rows):
        for mode in planners:
            g = [r["gap_ref"] for r in rows if r["size"] == size and r["planner"] == mode and r.get("gap_ref") is not None]
            if g:
                out.append(f"{size:7} {mode:7} gap to the pool-level LP (--lp-ref) median {_fmt(statistics.median(g))}, "
                           f"worst {_fmt(max(g))} ({len(g)} seeds)")
    return "\n".join(out)
