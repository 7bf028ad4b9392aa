"""No body, however strange, gets a 5xx; every plan the service returns passes the contract's checker.

Three generators, each bounded so the file runs in well under a minute:
- schemathesis over the published OpenAPI schema (every route, conforming and broken inputs);
- hypothesis over arbitrary bytes and arbitrary JSON values posted to /plan;
- hypothesis over requests valid by construction (fleets, running jobs that fit, quotas, links),
  whose plans must pass `plancheck.py --lp`.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import Settings, create_app
from tests.support.service import assert_plan_passes, json_client

FUZZ_DIR = tempfile.mkdtemp(prefix="meridian-fuzz-")
atexit.register(shutil.rmtree, FUZZ_DIR, True)
FUZZ_SETTINGS = Settings(db_path=FUZZ_DIR + "/plans.sqlite", max_time_limit_s=1.0,
                         max_jobs=200, max_nodes=2000, max_devices=20000, max_body_bytes=256 * 1024)
app = create_app(FUZZ_SETTINGS)         # schemathesis runs this one's lifespan; the tests below use their own
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
QUICK = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)


@schema.parametrize()
@settings(QUICK, max_examples=40)
def test_schema_fuzz_never_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.operation.label, response.status_code, response.text[:500])
    if case.operation.label == "POST /plan" and response.status_code == 200:
        assert_plan_passes(case.body, response.json())


ARBITRARY = st.one_of(
    st.binary(max_size=2000),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                 max_leaves=30).map(lambda v: json.dumps(v).encode()),
)


def test_arbitrary_bytes_and_json_are_refused_cleanly() -> None:
    with json_client(create_app(FUZZ_SETTINGS)) as c:

        @given(body=ARBITRARY)
        @settings(QUICK, max_examples=150)
        def post(body: bytes) -> None:
            r = c.post("/plan", content=body)
            assert r.status_code in (200, 422), (r.status_code, r.text[:300])
            if r.status_code == 422:
                assert r.json()["errors"], r.text

        post()


# -- valid requests by construction -------------------------------------------------------------------

ACCELERATORS = ["H100", "A100", "V100"]
TIERS = ["premium", "standard", "basic"]


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    n_regions = draw(st.integers(1, 3))
    regions = [f"r{i}" for i in range(n_regions)]
    pairs = [(a, b) for i, a in enumerate(regions) for b in regions[i + 1:]]
    links = [{"a": a, "b": b, "gbps": draw(st.sampled_from([0.25, 0.5, 2.0]))}
             for a, b in pairs if draw(st.booleans())]
    clusters, nodes = [], []          # nodes: (name, cluster, accelerator, devices)
    for ci in range(draw(st.integers(1, 3))):
        cname = f"c{ci}"
        groups = []
        for gi in range(draw(st.integers(1, 2))):
            acc = draw(st.sampled_from(ACCELERATORS))
            count, devices = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 4, 8]))
            prefix = f"{cname}-g{gi}-"
            groups.append({"prefix": prefix, "count": count, "accelerator": acc, "devices": devices})
            nodes += [(f"{prefix}{k}", cname, acc, devices) for k in range(count)]
        clusters.append({"name": cname, "region": draw(st.sampled_from(regions)), "node_groups": groups})
    down = [n[0] for n in nodes if draw(st.integers(0, 9)) == 0]
    used = {n[0]: 0 for n in nodes}
    jobs = []
    for ji in range(draw(st.integers(0, 6))):
        speed_accs = draw(st.lists(st.sampled_from(ACCELERATORS), min_size=1, max_size=3, unique=True))
        rmin = draw(st.integers(1, 3))
        job: dict[str, Any] = {
            "id": f"j{ji}", "tenant": draw(st.sampled_from(["t0", "t1"])), "tier": draw(st.sampled_from(TIERS)),
            "priority": draw(st.sampled_from([0.5, 1.0, 2.0])),
            "replicas": {"min": rmin, "max": rmin + draw(st.integers(0, 3))},
            "devices_per_replica": draw(st.sampled_from([1, 1, 2])),
            "speed": {a: draw(st.sampled_from([0.3, 0.6, 1.0])) for a in speed_accs},
            "data_region": draw(st.none() | st.sampled_from(regions)),
            "checkpoint_gb": draw(st.sampled_from([0.0, 1.0, 20.0, 120.0])),
        }
        if draw(st.booleans()):
            job["regions"] = draw(st.lists(st.sampled_from(regions), min_size=1, max_size=n_regions, unique=True))
        if draw(st.booleans()):
            job["checkpoint_region"] = draw(st.sampled_from(regions))
        if draw(st.booleans()):                       # running now, where it fits
            fits = [n for n in nodes if n[2] in job["speed"] and n[3] - used[n[0]] >= job["devices_per_replica"]]
            if fits:
                home = draw(st.sampled_from(fits))
                same = [n for n in fits if n[1] == home[1] and n[2] == home[2]]
                placement: dict[str, int] = {}
                for n in draw(st.lists(st.sampled_from(same), min_size=1, max_size=2, unique=True)):
                    free = (n[3] - used[n[0]]) // job["devices_per_replica"]
                    if free >= 1:
                        k = draw(st.integers(1, free))
                        placement[n[0]] = k
                        used[n[0]] += k * job["devices_per_replica"]
                job["current"] = {"cluster": home[1], "accelerator": home[2], "nodes": placement}
        jobs.append(job)
    quotas = [{"tenant": t, "tier": tier, "devices": draw(st.integers(0, 24))}
              for t in ("t0", "t1") for tier in TIERS if draw(st.integers(0, 3)) == 0]
    policy = {"time_limit_s": 0.5, "deterministic": draw(st.booleans()),
              "premium_preemptible": draw(st.booleans()),
              "spread_penalty": draw(st.sampled_from([0.0, 0.01, 0.2]))}
    if draw(st.booleans()):
        policy["migration_budget_gb"] = draw(st.sampled_from([0.0, 25.0, 500.0]))
    return {"epoch_s": draw(st.sampled_from([60, 300, 3600])),
            "fleet": {"regions": [{"name": r, "storage_gbps": draw(st.sampled_from([0.5, 1.0, 2.0]))} for r in regions],
                      "links": links, "clusters": clusters, "down_nodes": down},
            "jobs": jobs, "quotas": quotas, "policy": policy}


def test_valid_requests_get_plans_that_pass_plancheck() -> None:
    with json_client(create_app(FUZZ_SETTINGS)) as c:

        @given(req=valid_requests())
        @settings(QUICK, max_examples=40)
        def post(req: dict[str, Any]) -> None:
            r = c.post("/plan", params={"dry_run": "true"}, json=req)
            assert r.status_code == 200, r.text
            assert_plan_passes(req, r.json())

        post()
