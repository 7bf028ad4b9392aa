"""Shapes derived from other requests (issue 10): how far a plan at its limit lands on variations the
generators never draw.

    .venv/bin/python bench/derived_shapes.py BASE.json [BASE.json ...] [--shapes all_elastic,flat_weights]
        [--limit 1] [--out runs/derived] [--check ../shared/spec/plancheck.py]

Each base request (a family seed written out, a `bench/gen_apart.py` request) is changed one way at a time:
every job rigid at its maximum, or elastic from 1; nothing running; no migration budget; premium
preemptible; extreme or flat tier weights; a heavy spread or remote-data penalty; `replicas.allowed` at powers
of two; half the nodes down; quotas at a third of the demand, or none; priorities from 0.1 to 50; asked as a
backfill; three single-device copies of every job beside it. The generators are one sample of the shapes a
control plane sends; these move one policy or fleet knob far from where they draw it, so a search or a bound
tuned to the generators shows where it is brittle (2026-12-04: flat tier weights on apart alibaba seed 6
stalled the search at 4.6 % for 20 s).

Each derived request is planned in a fresh process at `--limit` seconds (the engine's own clock, the solver
loaded first, as `bench/plan_scale.py` does). Prints per request the status, the reported gap, the bound's
method and the wall time; with `--check`, the independent checker's verdict (valid, objective and bound
consistent) and its LP gap; then the median and the worst reported gap per shape and over all. Derived
requests the contract makes infeasible (a rigid premium job that no longer fits its range) are listed and
left out of the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _all_rigid(r: dict, rng: random.Random) -> None:
    for j in r["jobs"]:
        j["replicas"] = {"min": j["replicas"]["max"], "max": j["replicas"]["max"]}


def _all_elastic(r: dict, rng: random.Random) -> None:
    for j in r["jobs"]:
        j["replicas"] = {"min": 1, "max": max(j["replicas"]["max"], 16)}


def _no_current(r: dict, rng: random.Random) -> None:
    for j in r["jobs"]:
        j["current"] = None
    r["fleet"]["down_nodes"] = []


def _zero_budget(r: dict, rng: random.Random) -> None:
    r["policy"]["migration_budget_gb"] = 0


def _premium_preemptible(r: dict, rng: random.Random) -> None:
    r["policy"]["premium_preemptible"] = True


def _extreme_weights(r: dict, rng: random.Random) -> None:
    r["policy"]["tier_weights"] = {"premium": 1e6, "standard": 1.0, "basic": 0.001}


def _flat_weights(r: dict, rng: random.Random) -> None:
    r["policy"]["tier_weights"] = {"premium": 1, "standard": 1, "basic": 1}


def _high_spread(r: dict, rng: random.Random) -> None:
    r["policy"]["spread_penalty"] = 0.5


def _high_remote(r: dict, rng: random.Random) -> None:
    r["policy"]["remote_data_penalty"] = 0.9


def _pow2_allowed(r: dict, rng: random.Random) -> None:
    for j in r["jobs"]:
        lo, hi = j["replicas"]["min"], j["replicas"]["max"]
        listed = [x for x in (1, 2, 4, 8, 16, 32, 64) if lo <= x <= hi]
        if listed and lo < hi:
            j["replicas"]["allowed"] = listed


def _half_fleet_down(r: dict, rng: random.Random) -> None:
    names = [f"{g['prefix']}{i}" for c in r["fleet"]["clusters"] for g in c["node_groups"] for i in range(g["count"])]
    r["fleet"]["down_nodes"] = sorted(set(r["fleet"].get("down_nodes") or []) | set(rng.sample(names, len(names) // 2)))


def _tight_quotas(r: dict, rng: random.Random) -> None:
    demand: dict[tuple[str, str], int] = {}
    for j in r["jobs"]:
        key = (j["tenant"], j["tier"])
        demand[key] = demand.get(key, 0) + j["replicas"]["min"] * j.get("devices_per_replica", 1)
    r["quotas"] = [{"tenant": t, "tier": tier, "devices": max(1, d // 3)} for (t, tier), d in sorted(demand.items())]


def _no_quotas(r: dict, rng: random.Random) -> None:
    r["quotas"] = []


def _priorities(r: dict, rng: random.Random) -> None:
    for j in r["jobs"]:
        j["priority"] = rng.choice([0.1, 1, 1, 1, 5, 50])


def _backfill(r: dict, rng: random.Random) -> None:
    r["policy"]["mode"] = "backfill"


def _many_small(r: dict, rng: random.Random) -> None:
    r["jobs"] += [dict(copy.deepcopy(j), id=f"{j['id']}-x{k}", current=None, replicas={"min": 1, "max": 1},
                       devices_per_replica=1) for j in r["jobs"] for k in range(3)]


SHAPES: dict[str, Callable[[dict, random.Random], None]] = {
    f.__name__[1:]: f for f in (_all_rigid, _all_elastic, _no_current, _zero_budget, _premium_preemptible,
                                _extreme_weights, _flat_weights, _high_spread, _high_remote, _pow2_allowed,
                                _half_fleet_down, _tight_quotas, _no_quotas, _priorities, _backfill, _many_small)}


def derive(base: dict, shape: str, limit: float) -> dict:
    """`base` changed the `shape` way (a fixed seed, so the same base gives the same request), at `limit` s."""
    r = copy.deepcopy(base)
    SHAPES[shape](r, random.Random(7))
    r.setdefault("policy", {})["time_limit_s"] = limit
    return r


def plan_one(request: pathlib.Path, response: pathlib.Path) -> dict:
    """Plan `request` in this process (the solver loaded first) and write the response; the figures read."""
    from models import parse_request_json
    from placement import load_solver, plan

    load_solver()
    t0 = time.perf_counter()
    resp = plan(parse_request_json(request.read_bytes()), started=t0)
    wall = time.perf_counter() - t0
    response.write_text(resp.model_dump_json())
    return {"status": resp.status, "gap": resp.gap, "method": resp.stats.bound_method, "wall": round(wall, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bases", nargs="*", type=pathlib.Path)
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of: {', '.join(SHAPES)}")
    ap.add_argument("--limit", type=float, default=1.0)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "runs" / "derived")
    ap.add_argument("--check", type=pathlib.Path, default=None, help="the contract's checker (plancheck.py)")
    ap.add_argument("--one", nargs=2, type=pathlib.Path, help=argparse.SUPPRESS)   # REQUEST RESPONSE, in a child
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(plan_one(*a.one)))
        return 0
    if not a.bases:
        ap.error("give at least one base request (BASE.json)")
    shapes = [s for s in a.shapes.split(",") if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        ap.error(f"--shapes: unknown {', '.join(unknown)} (known: {', '.join(SHAPES)})")
    a.out.mkdir(parents=True, exist_ok=True)
    gaps: dict[str, list[float]] = {s: [] for s in shapes}
    infeasible, invalid = [], []
    for base_path in a.bases:
        base = json.loads(base_path.read_text())
        for shape in shapes:
            tag = f"{base_path.stem}.{shape}"
            req, resp = a.out / f"{tag}.json", a.out / f"{tag}.response.json"
            req.write_text(json.dumps(derive(base, shape, a.limit)))
            p = subprocess.run([sys.executable, __file__, "--one", str(req), str(resp)], check=False, capture_output=True, text=True)
            if p.returncode:
                print(f"{tag:40s} engine failed: {p.stderr.strip().splitlines()[-1:]}", flush=True)
                invalid.append(tag)
                continue
            got = json.loads(p.stdout.strip().splitlines()[-1])
            gap = "     -  " if got["gap"] is None else f"{100 * got['gap']:6.2f} %"
            line = f"{tag:40s} {got['status']:10s} gap {gap}  {got['method']:15s} {got['wall']:6.2f} s"
            if a.check:
                c = subprocess.run([sys.executable, str(a.check), str(req), str(resp), "--lp"],
                                   check=False, capture_output=True, text=True)
                ck = json.loads(c.stdout) if c.returncode == 0 and c.stdout.strip() else {}
                if got["status"] == "infeasible":
                    ok = ck.get("infeasible_refuted") is False
                else:
                    ok = all(ck.get(k) for k in ("valid", "objective_matches", "bound_ok", "actions_match",
                                                 "unplaced_complete"))
                gap_lp = ck.get("gap_vs_lp")
                line += f"  checker {'ok' if ok else 'FAILED'}" + (f", LP gap {100 * gap_lp:.2f} %" if gap_lp else "")
                if not ok:
                    invalid.append(tag)
            print(line, flush=True)
            if got["status"] == "infeasible":
                infeasible.append(tag)
            else:
                gaps[shape].append(got["gap"])
    print("\nreported gap per shape (median / worst):")
    every = [g for v in gaps.values() for g in v]
    for shape, v in gaps.items():
        if v:
            print(f"  {shape:20s} {100 * statistics.median(v):5.2f} / {100 * max(v):5.2f} %  ({len(v)} requests)")
    if every:
        print(f"  {'all':20s} {100 * statistics.median(every):5.2f} / {100 * max(every):5.2f} %  ({len(every)} requests)")
    print(f"infeasible by the contract (left out): {len(infeasible)} {' '.join(infeasible)}")
    print(f"failed or invalid: {len(invalid)} {' '.join(invalid)}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
