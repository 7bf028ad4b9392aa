"""Warm re-planning at planet size: how fast, how good, against a full plan of the same request.

    .venv/bin/python bench/replan.py [--size planet] [--seeds 0-2] [--steps 2] [--share 0.01] [--generator family]

Per seed: the base request (`datasets.requests.generate_family(size, seed)`, or `generate_size` with
`--generator size`) is planned in full (`placement.replan.plan_warm` without a state: the full solve,
which returns what it learned). Then, `--steps` times, the next epoch's request is made as a control plane
would (`datasets.churn.next_epoch`: the last plan applied, every placed job now running on its nodes,
`share / 2` of the jobs finished and as many arriving), and planned twice in this process: warm from the
last state, then in full (`placement.plan`, the same time limit). Each plan is held against the
independent checker (`../shared/spec/plancheck.py`'s scorer: valid, objective as the contract computes).
The next step starts from the warm plan and its state (a chain, as the service runs it).

Each request is parsed as the service parses the next request of a fleet (`models.reparse`: the jobs
sent exactly as in the previous request are not validated again; the base request's parse starts the
chain), and the collector is held from the parse to the response's JSON, as the service's
`CollectorHold` does. Prints per step: the warm answer end to end (parse + engine + the response's JSON
text, what the service's `POST /plan` spends besides the network and the plan log), its parts, the CPU
seconds this process spent on it (on a shared machine the wall clock also counts others' turns), the share
of jobs whose JSON differs from the previous request's (arrived, finished, or a new `current` after the
plan applied: after a full solve most jobs', so the first step of a chain is reported apart), the cold
parse of the same text for comparison, the full plan's wall with parse (cold), their ratio, both
objectives and the warm one's shortfall against the full one, both reported gaps, validity, and the load
average; then the median and the worst over every step.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _verdict(pc, data: dict, text: str, resp) -> tuple[bool, bool]:
    """(valid, objective as the checker computes it) by the independent checker's scorer, of the
    response's JSON text."""
    bad, obj, _br, _acts = pc.score(pc.World(data), json.loads(text)["assignments"])
    return not bad, abs(obj - resp.objective) <= 1e-6 * max(1.0, abs(obj))


def _changed(before: dict, after: dict) -> int:
    """Jobs that differ between two requests: arrived, finished, or sent otherwise (a job started, moved or
    resized by the plan applied carries a new `current`)."""
    old = {j["id"]: json.dumps(j, sort_keys=True) for j in before["jobs"]}
    new = {j["id"]: json.dumps(j, sort_keys=True) for j in after["jobs"]}
    return sum(1 for k, v in new.items() if old.get(k) != v) + sum(1 for k in old if k not in new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="planet")
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--steps", type=int, default=2, help="warm re-plans in a chain per seed")
    ap.add_argument("--share", type=float, default=0.01, help="share of the jobs changed per step (half finish, "
                    "half arrive)")
    ap.add_argument("--generator", choices=("family", "size"), default="family")
    ap.add_argument("--phases", action="store_true", help="print the warm re-plan's phases")
    ap.add_argument("--time-limit", type=float, default=None, help="the plans' time limit (default: the generator's)")
    args = ap.parse_args()

    from datasets.churn import next_epoch
    from datasets.requests import generate_family, generate_size
    from models import parse_request_json
    from models.collector import collector_paused
    from models.reparse import reparse_request_json
    from placement import load_solver, plan
    from placement.replan import plan_warm
    from tests.support import checker

    load_solver()   # an import, not the first plan's time

    pc = checker.load()
    if pc is None:
        raise SystemExit(checker.MISSING)
    gen = generate_family if args.generator == "family" else generate_size
    print(f"# bench/replan.py {args.size} seeds {args.seeds} steps {args.steps} share {args.share} "
          f"generator {args.generator}; load {_load()}")
    print("seed step jobs arr/done changed | warm end-to-end s (parse + engine + json; CPU s) | cold parse s | full: wall_s | "
          "warm e2e/full | objective warm / full (warm short by) | gap warm / full (bound method) | "
          "valid warm full | load")
    rows = []
    for seed in _seeds(args.seeds):
        data = gen(args.size, seed) if args.time_limit is None else gen(args.size, seed, time_limit_s=args.time_limit)
        text = json.dumps(data).encode()
        t = time.perf_counter()
        req, memo = reparse_request_json(text, None)
        resp, warm = plan_warm(req, started=t)
        del req
        print(f"{seed} base {len(data['jobs'])} jobs: full plan {time.perf_counter() - t:.2f} s, {resp.status}, "
              f"objective {resp.objective:.1f}, gap {100 * resp.gap:.2f} % ({resp.stats.bound_method}); load {_load()}",
              flush=True)
        for step in range(1, args.steps + 1):
            k = round(len(data["jobs"]) * args.share / 2)
            prev = data
            data = next_epoch(data, json.loads(resp.model_dump_json(by_alias=True)), k, k, seed=1000 * seed + step)
            changed = _changed(prev, data) / max(1, len(prev["jobs"]))
            text = json.dumps(data).encode()
            with collector_paused(True):   # as the service holds it from the parse to the answer
                c0 = time.process_time()
                t0 = time.perf_counter()
                req, next_memo = reparse_request_json(text, memo)
                t1 = time.perf_counter()
                w_resp, w_state = plan_warm(req, warm, started=t0)
                t2 = time.perf_counter()
                w_text = w_resp.model_dump_json(by_alias=True)
                t3 = time.perf_counter()
                cpu = time.process_time() - c0
            del req
            t = time.perf_counter()
            parse_request_json(text)
            cold_parse = time.perf_counter() - t
            t = time.perf_counter()
            f_resp = plan(parse_request_json(text), started=t)
            f_wall = time.perf_counter() - t
            w_ok = _verdict(pc, data, w_text, w_resp)
            f_ok = _verdict(pc, data, f_resp.model_dump_json(by_alias=True), f_resp)
            warm_used = w_resp.stats.replan is not None
            short = 1.0 - w_resp.objective / f_resp.objective
            row = {"seed": seed, "step": step, "parse_s": t1 - t0, "engine_s": t2 - t1, "json_s": t3 - t2,
                   "e2e_s": t3 - t0, "e2e_cpu_s": cpu, "cold_parse_s": cold_parse, "full_s": f_wall, "short": short,
                   "gap": w_resp.gap, "full_gap": f_resp.gap, "warm": warm_used, "valid": all(w_ok) and all(f_ok),
                   "changed": changed}
            rows.append(row)
            print(f"{seed} {step} {len(data['jobs'])} {k}/{k} {100 * changed:.1f}% | {'warm' if warm_used else 'FULL'}: "
                  f"{row['e2e_s']:.3f} ({row['parse_s']:.3f} + {row['engine_s']:.3f} + {row['json_s']:.3f}; "
                  f"cpu {cpu:.3f}) | "
                  f"{cold_parse:.3f} | {f_wall:.2f} | {row['e2e_s'] / f_wall:.3f} | "
                  f"{w_resp.objective:.1f} / {f_resp.objective:.1f} ({100 * short:+.3f} %) | "
                  f"{100 * w_resp.gap:.2f} % ({w_resp.stats.bound_method}) / {100 * f_resp.gap:.2f} % "
                  f"({f_resp.stats.bound_method}) | {w_ok} {f_ok} | {_load()}", flush=True)
            if args.phases:
                print(f"  warm phases: {w_resp.stats.phases_s}", flush=True)
            resp, warm, memo = w_resp, w_state, next_memo
    if rows:
        def med_worst(key: str) -> str:
            vals = [r[key] for r in rows]
            return f"median {statistics.median(vals):.3f}, worst {max(vals):.3f}"
        print(f"# warm end to end (parse + engine + json) s: {med_worst('e2e_s')} (CPU s of this process: "
              f"{med_worst('e2e_cpu_s')}); parse s: {med_worst('parse_s')}; "
              f"engine s: {med_worst('engine_s')}; json s: {med_worst('json_s')}")
        print(f"# cold parse s: {med_worst('cold_parse_s')}; full wall s: {med_worst('full_s')}; warm e2e / full: "
              f"median {statistics.median(r['e2e_s'] / r['full_s'] for r in rows):.3f}, "
              f"worst {max(r['e2e_s'] / r['full_s'] for r in rows):.3f}")
        print(f"# warm short of full (objective): median {100 * statistics.median(r['short'] for r in rows):+.3f} %, "
              f"worst {100 * max(r['short'] for r in rows):+.3f} %; warm reported gap: "
              f"median {100 * statistics.median(r['gap'] for r in rows):.2f} %, worst {100 * max(r['gap'] for r in rows):.2f} %; "
              f"full reported gap median {100 * statistics.median(r['full_gap'] for r in rows):.2f} %")
        for name, group in (("steady (the previous plan warm, so only the churn and that plan's starts differ)",
                             [r for r in rows if r["step"] > 1]),
                            ("first after a full solve (its starts and moves change most jobs' `current`)",
                             [r for r in rows if r["step"] == 1])):
            if group:
                e2e = [r["e2e_s"] for r in group]
                ch = [100 * r["changed"] for r in group]
                print(f"# {name}: {len(group)} steps, jobs differing {min(ch):.1f}-{max(ch):.1f} %; warm end to end "
                      f"median {statistics.median(e2e):.3f}, worst {max(e2e):.3f} s")
        print(f"# warm answered {sum(r['warm'] for r in rows)} of {len(rows)}; all valid: {all(r['valid'] for r in rows)}; "
              f"load {_load()}")


if __name__ == "__main__":
    main()
