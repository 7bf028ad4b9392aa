"""Backfill plans (contract v1.1 `policy.mode: "backfill"`): wall time on generated requests.

    .venv/bin/python bench/backfill_plan.py [medium large] [--seeds 0,1,2,3,4]

For each size and seed: the request of `datasets.requests.generate_size` (half its jobs running) asked
in backfill mode, timed end to end (`plan`, the request already parsed), beside the greedy planner alone
on the same request in epoch mode (the baseline, same run, same load), the backfill plan's CPU time (this process's, which a
loaded machine inflates far less than the wall) and the checker's verdict on the
backfill plan when `../shared` is there. Prints the median and the worst case and the load average.

The backfill plan is asked twice: deterministic, as the replays and the live loop ask it (above
`placement.backfill.SEARCH_MAX_OPTIONS` unpinned options one greedy pass), and on the wall clock, as a
control plane asks through `meridian serve` or `meridian plan` (the optimizer within
`EngineParams.backfill_limit_s`); for the second its gap to its own bound and its objective over the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", default=["medium"])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    args = ap.parse_args(argv)

    from datasets.requests import generate_size
    from models import parse_request
    from placement import greedy_plan, load_solver, plan
    from tests.support import checker

    load_solver()   # an import, not the first plan's time

    pc = checker.load()
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for size in args.sizes:
        walls, cpus, greedy_walls, clock_walls, clock_gaps = [], [], [], [], []
        for seed in [int(s) for s in args.seeds.split(",")]:
            data = generate_size(size, seed=seed)
            data["policy"]["deterministic"] = True
            epoch_req = parse_request(json.loads(json.dumps(data)))
            data["policy"]["mode"] = "backfill"
            req = parse_request(data)
            t0, c0 = time.perf_counter(), time.process_time()
            resp = plan(req)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            t0 = time.perf_counter()
            greedy_plan(epoch_req)
            g = time.perf_counter() - t0
            walls.append(wall)
            cpus.append(cpu)
            greedy_walls.append(g)
            verdict = ""
            if pc is not None:
                w = pc.World(json.loads(req.model_dump_json()))
                viol, obj, _, _ = pc.score(w, [a.model_dump() for a in resp.assignments])
                verdict = f", checker: {'valid' if not viol else viol[:2]}, objective matches " \
                          f"{abs(obj - resp.objective) <= 1e-6 * max(1, abs(obj))}"
            data["policy"]["deterministic"] = False
            t0 = time.perf_counter()
            clock = plan(parse_request(data))
            clock_walls.append(time.perf_counter() - t0)
            clock_gaps.append(clock.gap)
            running = sum(1 for j in req.jobs if j.current is not None)
            print(f"{size} seed {seed}: {len(req.jobs)} jobs ({running} running), backfill plan {1000 * wall:.1f} ms "
                  f"(CPU {1000 * cpu:.1f} ms; {resp.status}, {resp.stats.engine}, {len(resp.actions)} actions); greedy epoch plan "
                  f"{1000 * g:.1f} ms; ratio {wall / g:.2f}{verdict}; on the wall clock {1000 * clock_walls[-1]:.1f} ms, "
                  f"gap {100 * clock.gap:.2f} % ({clock.stats.bound_method}) against {100 * resp.gap:.2f} %, objective "
                  f"x {clock.objective / resp.objective:.4f}", flush=True)
        print(f"{size}: backfill plan median {1000 * statistics.median(walls):.1f} ms, worst {1000 * max(walls):.1f} ms "
              f"(CPU median {1000 * statistics.median(cpus):.1f} ms, worst {1000 * max(cpus):.1f} ms; greedy epoch plan median {1000 * statistics.median(greedy_walls):.1f} ms); load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{size}: on the wall clock median {1000 * statistics.median(clock_walls):.1f} ms, worst "
              f"{1000 * max(clock_walls):.1f} ms; gap median {100 * statistics.median(clock_gaps):.2f} %, worst "
              f"{100 * max(clock_gaps):.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
