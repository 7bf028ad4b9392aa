"""Plan generated production-shaped requests at three sizes; print time, memory and quality.

    .venv/bin/python bench/plan_scale.py [medium large planet] [--seed 0] [--no-check]
    .venv/bin/python bench/plan_scale.py --family [medium large planet] [--seeds 0-9] [--mip] [--exact S] [--lp-ref S] [--time-limit S]

`--family` plans members of the request family (`datasets.requests.generate_family`: shapes
drawn per seed) and reports per size the median and the worst gap over the seeds, to the
checker's LP bound (cached per request under runs/bench-cache, it does not depend on the plan)
and, with `--mip`, to the checker's pool-level integer bound where it solves within a minute;
`--exact S` adds the node-level MILP's bound (placement.exact, S seconds) where it is tighter.

Per size: the engine (`plan`) and the greedy planner alone (`greedy_plan`), each in a fresh
process (peak memory is that process's max RSS), then the independent checker
(../shared/spec/plancheck.py --lp; --lp-region for planet) on each response. Prints wall time
(and how far past the time limit it landed, parse included; `out_s` adds the response's JSON), peak memory, status, objective, the engine's bound, the checker's LP bound, the gap to it, and
the engine's time as a ratio to the greedy's measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CHECKER = pathlib.Path(os.environ.get("MERIDIAN_CHECKER", ROOT.parent / "shared" / "spec" / "plancheck.py"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))


def worker(request_path: str, mode: str, out_path: str) -> None:
    from models import parse_request_json
    from placement import greedy_plan, load_solver, plan

    text = pathlib.Path(request_path).read_bytes()
    load_solver()   # an import, not the plan's time (as `meridian plan` and the service load it)
    t0 = time.perf_counter()
    req = parse_request_json(text)
    # the limit counts from here, parsing included, as for `meridian plan`
    resp = greedy_plan(req, started=t0) if mode == "greedy" else plan(req, started=t0)
    wall = time.perf_counter() - t0
    text = resp.model_dump_json()
    out = time.perf_counter() - t0   # the response out as JSON text, as `meridian plan` and the service send it
    pathlib.Path(out_path).write_text(text)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "out_s": out, "peak_mib": peak_mib}))


def run_one(request_path: str, mode: str, out_path: str) -> dict:
    p = subprocess.run([sys.executable, __file__, "--worker", request_path, mode, out_path],
                       check=False, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"{mode} failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def check(request_path: str, out_path: str, region: bool) -> dict:
    if not CHECKER.exists():
        return {}
    p = subprocess.run([sys.executable, str(CHECKER), request_path, out_path, "--lp-region" if region else "--lp"],
                       check=False, capture_output=True, text=True, timeout=1800)
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else {}


def main() -> None:
    if "--family" in sys.argv:
        sys.argv.remove("--family")
        from family_bench import main as family_main

        family_main()
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", default=["medium", "large", "planet"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-check", action="store_true", help="skip the independent checker")
    a = ap.parse_args()
    from datasets.requests import SIZES, generate_size

    targets = {"medium": (1.0, 0.01), "large": (5.0, 0.02), "planet": (10.0, 0.03)}
    print(f"seed {a.seed}; {os.cpu_count()} cores; checker {'on' if CHECKER.exists() and not a.no_check else 'off'}")
    head = f"{'size':7} {'planner':7} {'wall_s':>7} {'over_s':>6} {'x greedy':>8} {'peak_MiB':>8} {'status':9} {'objective':>12} " \
           f"{'bound':>12} {'checker_lp':>12} {'gap_vs_lp':>9} {'valid':>5}"
    print(head)
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.sizes:
            data = generate_size(size, seed=a.seed)
            rp = os.path.join(tmp, f"{size}.json")
            pathlib.Path(rp).write_text(json.dumps(data))
            rows = {}
            for mode in ("greedy", "engine"):
                op = os.path.join(tmp, f"{size}-{mode}.json")
                m = run_one(rp, mode, op)
                resp = json.loads(pathlib.Path(op).read_text())
                c = {} if a.no_check else check(rp, op, region=(size == "planet"))
                rows[mode] = (m, resp, c)
            for mode in ("greedy", "engine"):
                m, resp, c = rows[mode]
                ratio = m["wall_s"] / rows["greedy"][0]["wall_s"]
                lp = c.get("lp_bound")
                over = m["wall_s"] - data["policy"]["time_limit_s"]
                print(f"{size:7} {mode:7} {m['wall_s']:7.2f} {over:6.2f} {ratio:8.2f} {m['peak_mib']:8.0f} {resp['status']:9} "
                      f"{resp['objective']:12.1f} {resp['bound']:12.1f} {lp if lp is not None else float('nan'):12.1f} "
                      f"{c.get('gap_vs_lp', float('nan')):9.4f} {c.get('valid', '-')!s:>5}")
            limit, gap = targets[size]
            spec = SIZES[size]
            print(f"  target {size} ({spec['devices']} devices, {spec['jobs']} jobs, {spec['regions']} regions): "
                  f"limit {limit} s, gap to the checker's LP at most {gap:.0%}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
    else:
        main()
