#!/usr/bin/env python3
"""How quickly the operator's view answers from the plan log, printing figures and ratios.

  listing  `PlanStore.recent(50)` over 50 large plan records (the `large` generated request, about 1.3 MB,
           and a 3,000-job response): the listing columns stored before the documents (this version's
           table) against appended after them (a table an older version made, migrated in place)
  pages    one planned `medium` and `large` request each: `GET /plans/{id}/view` (server-rendered, with
           the pool SVG) beside `GET /plans/{id}` (the JSON record, the baseline), and `GET /`

    .venv/bin/python bench/operator_pages.py --seed 1

Medians of --repeat runs; the load average is printed before and after (the figures swing with it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OLD_TABLE = ("CREATE TABLE meridian_plans (plan_id VARCHAR(32) PRIMARY KEY, created_at FLOAT NOT NULL, "
             "idempotency_key VARCHAR(255) UNIQUE, request_digest VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, "
             "objective FLOAT, gap FLOAT, queue_s FLOAT NOT NULL, solve_s FLOAT NOT NULL, "
             "time_budget_s FLOAT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL)")


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def listing(tmp: str, seed: int, repeat: int) -> None:
    import sqlalchemy

    from datasets.requests import generate_size
    from service.app.store import PlanRecord, PlanStore

    req = json.dumps(generate_size("large", seed=seed))
    resp = json.dumps({"status": "feasible", "unplaced": [{"job": f"j{i}", "reason": "x" * 60, "code": "quota"}
                                                          for i in range(3000)]})

    def filled(url: str) -> PlanStore:
        store = PlanStore(url)
        for i in range(50):
            store.put(PlanRecord(plan_id=uuid.uuid4().hex, created_at=1e9 + i, idempotency_key=None,
                                 request_digest="d", status="feasible", objective=1.0, gap=0.0, queue_s=0.0,
                                 solve_s=1.0, time_budget_s=5.0, request=req, response=resp, engine="cpsat",
                                 time_limit_s=5.0, unplaced=3000))
        return store

    new = filled(f"sqlite:///{tmp}/new.sqlite")
    old_url = f"sqlite:///{tmp}/old.sqlite"
    eng = sqlalchemy.create_engine(old_url)
    with eng.begin() as conn:
        conn.execute(sqlalchemy.text(OLD_TABLE))
    eng.dispose()
    old = filled(old_url)
    t_new = median_ms(lambda: new.recent(50), repeat)
    t_old = median_ms(lambda: old.recent(50), repeat)
    print(f"listing: 50 plans of {len(req) // 1024} KB request + {len(resp) // 1024} KB response: "
          f"recent(50) {t_new:.1f} ms (columns before the documents) vs {t_old:.1f} ms (appended to an older "
          f"table): {t_old / t_new:.0f}x")


def pages(tmp: str, seed: int, repeat: int) -> None:
    from fastapi.testclient import TestClient

    from datasets.requests import generate_size
    from service.app import Settings, create_app

    with TestClient(create_app(Settings(db_path=f"{tmp}/pages.sqlite", workers=1))) as client:
        for size in ("medium", "large"):
            req = generate_size(size, seed=seed, time_limit_s=2)
            plan = client.post("/plan", json=req).json()
            pid = plan["plan_id"]
            view = median_ms(lambda pid=pid: client.get(f"/plans/{pid}/view"), repeat)
            record = median_ms(lambda pid=pid: client.get(f"/plans/{pid}"), repeat)
            size_kb = len(client.get(f"/plans/{pid}/view").content) // 1024
            print(f"pages: {size} ({len(req['jobs'])} jobs, {len(plan['unplaced'])} waiting, "
                  f"{len(plan['actions'])} actions): view {view:.0f} ms ({size_kb} KB of HTML), JSON record "
                  f"{record:.0f} ms (ratio {view / record:.1f}x)")
        print(f"pages: front page with 2 plans {median_ms(lambda: client.get('/'), repeat):.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    print(f"seed {args.seed}; load average before {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        listing(tmp, args.seed, args.repeat)
        pages(tmp, args.seed, args.repeat)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
