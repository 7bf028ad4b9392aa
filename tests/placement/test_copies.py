"""`bench/copies.py`: a request at K times its size, as the large-size measurement of the apart shapes reads it.
Three copies of the two-regions example: a valid request the engine plans validly, worth at least three
times the example's optimum (each copy can do what the example does; jobs without `regions` may do more)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from models import parse_request_json
from placement import plan
from tests.support import checker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "two-regions.json").read_text())


def _copies():
    spec = importlib.util.spec_from_file_location("bench_copies", ROOT / "bench" / "copies.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.copies


def _plan(data: dict):
    data = {**data, "policy": {**data.get("policy", {}), "deterministic": True, "time_limit_s": 2.0}}
    return data, plan(parse_request_json(json.dumps(data).encode()))


def test_three_copies_hold_three_times_the_jobs_and_nodes_each_running_job_in_its_own_copy():
    big = _copies()(EXAMPLE, 3)
    req = parse_request_json(json.dumps(big).encode())
    assert len(req.jobs) == 3 * len(EXAMPLE["jobs"])
    assert len(big["fleet"]["down_nodes"]) == 3 * len(EXAMPLE["fleet"]["down_nodes"])
    running = [j for j in big["jobs"] if j.get("current")]
    assert running and all(j["current"]["cluster"].endswith(j["id"][-3:]) for j in running)


def test_the_engine_plans_three_copies_validly_at_three_times_the_example_or_more():
    _, small = _plan(EXAMPLE)
    assert small.status == "optimal"
    big, resp = _plan(_copies()(EXAMPLE, 3))
    pc = checker.require()
    bad, obj, _br, _acts = pc.score(pc.World(big), resp.model_dump(mode="json", by_alias=True)["assignments"])
    assert bad == []
    assert obj == resp.objective or abs(obj - resp.objective) <= 1e-6 * max(1.0, abs(obj))
    assert resp.objective >= 3 * small.objective - 1e-6 * abs(small.objective)
