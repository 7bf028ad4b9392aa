"""POST /plan and friends, through the app in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from placement import greedy_plan, plan
from service.app import Settings, create_app
from service.app.openapi import EXAMPLE_REQUEST
from service.app.store import request_digest
from tests.support.service import EXAMPLE, assert_plan_passes, example_request, json_client

BODY = EXAMPLE.read_bytes()


def _store_count(client: TestClient) -> int:
    return client.app.state.service.store.count()


# -- the plan and the plan log ------------------------------------------------------------------------


def test_plan_is_recorded_and_readable_back(client: TestClient) -> None:
    r = client.post("/plan", content=BODY)
    assert r.status_code == 200, r.text
    resp = r.json()
    assert re.fullmatch(r"[0-9a-f]{32}", resp["plan_id"])
    assert r.headers["location"] == f"/plans/{resp['plan_id']}"
    assert_plan_passes(example_request(), resp)

    got = client.get(f"/plans/{resp['plan_id']}")
    assert got.status_code == 200
    rec = got.json()
    assert rec["plan_id"] == resp["plan_id"]
    assert rec["response"] == resp
    assert rec["request"] == example_request()
    assert rec["status"] == resp["status"]
    assert rec["idempotency_key"] is None
    assert rec["timing"]["solve_s"] > 0


def test_dry_run_plans_without_recording(client: TestClient) -> None:
    before = _store_count(client)
    r = client.post("/plan", params={"dry_run": "true"}, content=BODY)
    assert r.status_code == 200, r.text
    assert r.json()["plan_id"] is None
    assert "location" not in r.headers
    assert_plan_passes(example_request(), r.json())
    assert _store_count(client) == before


def test_unknown_plan_id_is_404(client: TestClient) -> None:
    for pid in (uuid.uuid4().hex, "not-a-plan-id"):
        r = client.get(f"/plans/{pid}")
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
        assert pid in r.json()["message"]


def test_infeasible_request_is_200_with_status_infeasible(sqlite_client: TestClient) -> None:
    req = {
        "fleet": {"regions": [{"name": "r"}],
                  "clusters": [{"name": "c", "region": "r",
                                "node_groups": [{"prefix": "n", "count": 1, "accelerator": "H100", "devices": 8}]}]},
        "jobs": [{"id": "big", "tenant": "t", "tier": "premium", "replicas": {"min": 8, "max": 8},
                  "speed": {"H100": 1.0}, "current": {"cluster": "c", "accelerator": "H100", "nodes": {"n0": 8}}}],
        "quotas": [{"tenant": "t", "tier": "premium", "devices": 4}],
        "policy": {"time_limit_s": 1},
    }
    r = sqlite_client.post("/plan", json=req)
    assert r.status_code == 200, r.text
    resp = r.json()
    assert resp["status"] == "infeasible"
    assert resp["assignments"] == [] and resp["objective"] is None
    assert [u["job"] for u in resp["unplaced"]] == ["big"]
    assert_plan_passes(req, resp)
    assert sqlite_client.get(f"/plans/{resp['plan_id']}").json()["status"] == "infeasible"


# -- idempotency ----------------------------------------------------------------------------------------


def test_repeated_idempotency_key_returns_the_recorded_plan(client: TestClient) -> None:
    key = uuid.uuid4().hex
    first = client.post("/plan", content=BODY, headers={"Idempotency-Key": key})
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    before = _store_count(client)
    again = client.post("/plan", content=BODY, headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert _store_count(client) == before
    assert client.get(f"/plans/{first.json()['plan_id']}").json()["idempotency_key"] == key


def test_same_request_spelled_differently_is_a_replay(client: TestClient) -> None:
    """Whitespace, key order and defaults written out do not make a different request."""
    key = uuid.uuid4().hex
    first = client.post("/plan", content=BODY, headers={"Idempotency-Key": key}).json()
    req = example_request()
    req["policy"]["deterministic"] = False           # the default, spelled out
    req["jobs"][0]["devices_per_replica"] = 1       # likewise
    respelled = json.dumps(dict(reversed(list(req.items()))), indent=3).encode()
    again = client.post("/plan", content=respelled, headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.json()["plan_id"] == first["plan_id"]


def test_same_key_with_a_different_request_is_409(client: TestClient) -> None:
    key = uuid.uuid4().hex
    first = client.post("/plan", content=BODY, headers={"Idempotency-Key": key}).json()
    req = example_request()
    req["jobs"][0]["priority"] = 3.0
    r = client.post("/plan", json=req, headers={"Idempotency-Key": key})
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "idempotency_conflict"
    assert key in body["message"] and first["plan_id"] in body["message"]


def test_concurrent_requests_with_one_key_record_one_plan(client: TestClient) -> None:
    key = uuid.uuid4().hex
    before = _store_count(client)
    results: list[tuple[int, str]] = []

    def send() -> None:
        r = client.post("/plan", content=BODY, headers={"Idempotency-Key": key})
        results.append((r.status_code, r.json().get("plan_id")))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4
    assert {s for s, _ in results} == {200}
    assert len({pid for _, pid in results}) == 1
    assert _store_count(client) == before + 1


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_malformed_idempotency_key_is_422(sqlite_client: TestClient, key: str) -> None:
    r = sqlite_client.post("/plan", content=BODY, headers={"Idempotency-Key": key.encode("utf-8")})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "header.Idempotency-Key"


# -- bad requests --------------------------------------------------------------------------------------


def _errors(r) -> list[dict]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "bad_request"
    return body["errors"]


@pytest.mark.parametrize("body, message", [
    (b"{bad", "not valid JSON"),
    (b"", "not valid JSON"),
    (b'{"epoch_s": NaN}', "NaN is not a valid JSON number"),
    (b'{"epoch_s": Infinity}', "Infinity is not a valid JSON number"),
    (b"\xff\xfe\x00garbage", "not UTF-8: byte 0xff at offset 0"),
    (b'{"epoch_s": 300, "tenant": "caf\xe9"}', "not UTF-8: byte 0xe9 at offset 31"),
    (b"[" * 100_000, "not valid JSON"),
])
def test_malformed_json_is_422_naming_the_problem(sqlite_client: TestClient, body: bytes, message: str) -> None:
    errs = _errors(sqlite_client.post("/plan", content=body))
    assert errs[0]["path"] == ""
    assert message in errs[0]["message"]


def test_a_json_value_that_is_not_an_object_is_422(sqlite_client: TestClient) -> None:
    errs = _errors(sqlite_client.post("/plan", content=b"[1, 2]"))
    assert errs == [{"path": "", "value": "list", "message": "a plan request is a JSON object"}]


def test_wrong_types_and_contract_violations_name_path_and_value(sqlite_client: TestClient) -> None:
    req = example_request()
    req["epoch_s"] = "300"
    req["jobs"][1]["replicas"]["min"] = 0
    req["jobs"][2]["data_region"] = "mars"
    errs = _errors(sqlite_client.post("/plan", json=req))
    by_path = {e["path"]: e for e in errs}
    assert by_path["epoch_s"]["value"] == "300"
    assert by_path["jobs[1].replicas.min"]["value"] == 0
    req = example_request()
    req["jobs"][2]["data_region"] = "mars"
    errs = _errors(sqlite_client.post("/plan", json=req))
    assert errs == [{"path": "jobs[2].data_region", "value": "mars", "message": "unknown region"}]


def test_time_limit_above_the_server_cap_is_422(sqlite_settings: Settings) -> None:
    with json_client(create_app(replace(sqlite_settings, max_time_limit_s=3))) as c:
        req = example_request()
        req["policy"]["time_limit_s"] = 5
        errs = _errors(c.post("/plan", json=req))
    assert errs == [{"path": "policy.time_limit_s", "value": 5, "message": "above this server's cap of 3 s"}]


def test_request_sizes_beyond_the_caps_are_422_naming_the_limit(sqlite_settings: Settings) -> None:
    with json_client(create_app(replace(sqlite_settings, max_jobs=5, max_devices=49, max_nodes=8))) as c:
        errs = _errors(c.post("/plan", content=BODY))
    messages = {e["message"] for e in errs}
    assert "too many jobs: the limit is 5" in messages
    assert "too many devices: the limit is 49" in messages
    assert "too many nodes: the limit is 8" in messages
    assert {e["value"] for e in errs} == {6, 9, 50}


def test_a_billion_node_fleet_is_refused_without_enumerating_it(sqlite_client: TestClient) -> None:
    req = example_request()
    req["fleet"]["clusters"][0]["node_groups"][0]["count"] = 2_000_000     # the most one group may hold
    req["fleet"]["clusters"][1]["node_groups"][0]["count"] = 2_000_000
    started = time.monotonic()
    errs = _errors(sqlite_client.post("/plan", json=req))
    assert time.monotonic() - started < 10
    assert errs[0]["path"] == "fleet.clusters"
    assert errs[0]["message"] == "too many nodes: the limit is 50000"


def test_body_over_the_cap_is_413(sqlite_settings: Settings) -> None:
    with json_client(create_app(replace(sqlite_settings, max_body_bytes=1000))) as c:
        r = c.post("/plan", content=BODY)
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"
        assert f"request body is {len(BODY)} bytes" in r.json()["message"]
        assert "at most 1000 bytes" in r.json()["message"]

        def chunks():                            # no Content-Length: refused while streaming
            for i in range(0, len(BODY), 256):
                yield BODY[i:i + 256]

        r = c.post("/plan", content=chunks())
        assert r.status_code == 413
        assert "the request body is more than 1000 bytes" in r.json()["message"]


def test_a_bad_query_parameter_is_422_in_the_same_format(sqlite_client: TestClient) -> None:
    errs = _errors(sqlite_client.post("/plan", params={"dry_run": "perhaps"}, content=BODY))
    assert errs[0]["path"] == "query.dry_run" and errs[0]["value"] == "perhaps"


# -- overload ------------------------------------------------------------------------------------------


def test_past_the_queue_requests_get_429_with_retry_after(sqlite_settings: Settings) -> None:
    """One worker, no queue: while a plan is solving, the next is refused at once, then served after."""
    gate = threading.Event()
    entered = threading.Event()

    def gated_plan(req, started=None):
        entered.set()
        gate.wait(30)
        return plan(req, started=started)

    app = create_app(replace(sqlite_settings, workers=1, queue=0), planner=gated_plan)
    with json_client(app) as c:
        first: list = []
        t = threading.Thread(target=lambda: first.append(c.post("/plan", content=BODY)))
        t.start()
        assert entered.wait(30)
        r = c.post("/plan", content=BODY)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"] == "overloaded" and r.json()["retry_after_s"] == int(r.headers["retry-after"])
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["capacity"].startswith("saturated")
        assert c.get("/healthz").status_code == 200
        metrics = c.get("/metrics").text
        assert "meridian_solves_in_progress 1.0" in metrics
        assert 'meridian_rejected_total{reason="overloaded"} 1.0' in metrics
        gate.set()
        t.join(60)
        assert first[0].status_code == 200
        assert c.post("/plan", content=BODY).status_code == 200


def test_a_long_queue_cuts_time_limits_and_says_so(sqlite_settings: Settings) -> None:
    """One worker and three plans queued behind a held one: the first to start after it gets a fair share
    of the 10 s wait cap (10 / 3 s) instead of its 5 s, reported in a header and the plan log."""
    gate = threading.Event()
    seen: list[float] = []

    def gated_plan(req, started=None):
        if not seen:
            gate.wait(30)
        seen.append(req.policy.time_limit_s)
        return plan(req, started=started)

    app = create_app(replace(sqlite_settings, workers=1, queue=10, max_wait_s=10, min_budget_s=0.5),
                     planner=gated_plan)
    with json_client(app) as c:
        responses: list = []
        bodies = []
        for k in range(4):
            req = example_request()
            req["jobs"][0]["priority"] = 1.0 + k
            bodies.append(req)
        threads = [threading.Thread(target=lambda b=b: responses.append(c.post("/plan", json=b))) for b in bodies]
        threads[0].start()
        admission = app.state.service.admission
        deadline = time.monotonic() + 30
        while admission.running < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        for t in threads[1:]:
            t.start()
        while admission.waiting < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert admission.waiting == 3
        gate.set()
        for t in threads:
            t.join(60)
        assert sorted(seen) == [10 / 3, 5.0, 5.0, 5.0]
        cut = [r for r in responses if "x-meridian-time-budget-s" in r.headers]
        assert len(cut) == 1 and cut[0].headers["x-meridian-time-budget-s"] == "3.333"
        rec = c.get(f"/plans/{cut[0].json()['plan_id']}").json()
        assert rec["timing"]["time_budget_s"] == pytest.approx(10 / 3)
        assert rec["request"]["policy"]["time_limit_s"] == 5              # the request as sent
        assert "meridian_plan_budget_cuts_total 1.0" in c.get("/metrics").text
        assert all(r.status_code == 200 for r in responses)


# -- operations ----------------------------------------------------------------------------------------


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True
    assert r.json()["checks"] == {"engine": "ok", "store": "ok", "draining": "no", "capacity": "ok"}


def test_readiness_fails_while_draining(sqlite_client: TestClient) -> None:
    sqlite_client.app.state.service.begin_drain()
    r = sqlite_client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["draining"].startswith("yes")
    assert sqlite_client.post("/plan", content=BODY).status_code == 503


def test_metrics_count_requests_solves_and_plans(sqlite_client: TestClient) -> None:
    assert sqlite_client.post("/plan", content=BODY).status_code == 200
    assert sqlite_client.post("/plan", content=b"{").status_code == 422
    text = sqlite_client.get("/metrics").text
    status = sqlite_client.get(f"/plans/{uuid.uuid4().hex}")   # a 404, counted under the route template
    assert status.status_code == 404
    text = sqlite_client.get("/metrics").text
    assert 'meridian_http_requests_total{method="POST",route="/plan",status="200"} 1.0' in text
    assert 'meridian_http_requests_total{method="POST",route="/plan",status="422"} 1.0' in text
    assert 'meridian_http_requests_total{method="GET",route="/plans/{plan_id}",status="404"} 1.0' in text
    assert "meridian_plan_solve_seconds_count 1.0" in text
    assert "meridian_plan_gap_count 1.0" in text
    assert "meridian_plan_store_seconds_count 1.0" in text
    assert re.search(r'meridian_plans_total\{status="(optimal|feasible|fallback)"\} 1.0', text)
    assert "meridian_plan_fallbacks_total 0.0" in text
    assert "meridian_queue_depth 0.0" in text
    assert 'meridian_http_request_duration_seconds_bucket{le="+Inf",route="/plan"} 2.0' in text


def test_request_id_is_echoed_or_made_up(sqlite_client: TestClient) -> None:
    r = sqlite_client.post("/plan", content=b"{", headers={"X-Request-ID": "cp-epoch-42.us-east"})
    assert r.headers["x-request-id"] == "cp-epoch-42.us-east"
    assert r.json()["request_id"] == "cp-epoch-42.us-east"
    r = sqlite_client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_an_engine_failure_is_answered_by_the_heuristic(sqlite_settings: Settings) -> None:
    def failing(req, started=None):
        raise RuntimeError("solver crashed")

    with json_client(create_app(sqlite_settings, planner=failing, fallback=greedy_plan)) as c:
        r = c.post("/plan", content=BODY)
        assert r.status_code == 200, r.text
        assert_plan_passes(example_request(), r.json())
        text = c.get("/metrics").text
    assert "meridian_engine_errors_total 1.0" in text
    assert "meridian_plan_fallbacks_total 1.0" in text


def test_unknown_route_is_a_json_404(sqlite_client: TestClient) -> None:
    r = sqlite_client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


# -- the published schema ------------------------------------------------------------------------------


def test_openapi_publishes_the_request_schema_with_a_worked_example(sqlite_client: TestClient) -> None:
    spec = sqlite_client.get("/openapi.json").json()
    body = spec["paths"]["/plan"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PlanRequest"}
    assert "fleet" in spec["components"]["schemas"]["PlanRequest"]["properties"]
    example = body["examples"]["two-regions"]["value"]
    r = sqlite_client.post("/plan", json=example)
    assert r.status_code == 200, r.text
    assert_plan_passes(copy.deepcopy(EXAMPLE_REQUEST), r.json())
    assert sqlite_client.get("/docs").status_code == 200


def test_digest_ignores_spelling_but_not_meaning() -> None:
    from models import parse_request

    a = parse_request(example_request())
    b_req = example_request()
    b_req["jobs"][0]["priority"] = 1.0 + 1e-9
    b = parse_request(b_req)
    respelled = json.loads(json.dumps(a.model_dump(mode="json", by_alias=True), indent=2))
    for job in respelled["jobs"]:          # key order inside the name-keyed maps is spelling too
        job["speed"] = dict(reversed(list(job["speed"].items())))
    assert any(len(j["speed"]) > 1 for j in respelled["jobs"])
    assert request_digest(a) == request_digest(parse_request(respelled))
    assert request_digest(a) != request_digest(b)


def test_solver_threads_run_at_the_configured_niceness(sqlite_settings: Settings) -> None:
    import os

    seen: list[int] = []

    def recording_plan(req, started=None):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return plan(req, started=started)

    with json_client(create_app(replace(sqlite_settings, solver_nice=7), planner=recording_plan)) as c:
        assert c.post("/plan", content=BODY).status_code == 200
    assert seen == [max(7, os.getpriority(os.PRIO_PROCESS, 0))]


def test_a_plan_log_outage_is_503_and_acknowledges_nothing(sqlite_client: TestClient) -> None:
    """The database goes away (here: its engine points at a port where nothing listens)."""
    import sqlalchemy

    svc = sqlite_client.app.state.service
    good = svc.store.engine
    svc.store.engine = sqlalchemy.create_engine("postgresql+psycopg://u:p@127.0.0.1:1/none")
    try:
        r = sqlite_client.post("/plan", content=BODY)
        assert r.status_code == 503 and "could not record" in r.json()["message"]
        r = sqlite_client.get(f"/plans/{uuid.uuid4().hex}")
        assert r.status_code == 503 and "could not be read" in r.json()["message"]
        ready = sqlite_client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["store"].startswith("plan log unavailable")
    finally:
        svc.store.engine.dispose()
        svc.store.engine = good
    assert sqlite_client.post("/plan", content=BODY).status_code == 200



# -- backfill plans (contract v1.1 policy.mode) ----------------------------------------------------------


def test_a_backfill_plan_keeps_the_running_jobs_on_up_nodes_and_passes_the_checker(sqlite_client: TestClient) -> None:
    req = example_request()
    req.setdefault("policy", {})["mode"] = "backfill"
    r = sqlite_client.post("/plan", params={"dry_run": "true"}, json=req)
    assert r.status_code == 200, r.text
    resp = r.json()
    assert_plan_passes(req, resp)
    acted = {a["job"]: a["kind"] for a in resp["actions"]}
    assert "llm-pretrain" not in acted and "eu-resident" not in acted      # running on up nodes: they stay
    assert acted["vision-ft"] in ("move", "resize", "preempt")             # its node is down: planned as usual


def test_an_unknown_policy_mode_is_422_naming_the_field_and_value(sqlite_client: TestClient) -> None:
    req = example_request()
    req.setdefault("policy", {})["mode"] = "soon"
    errs = _errors(sqlite_client.post("/plan", json=req))
    assert [(e["path"], e["value"]) for e in errs] == [("policy.mode", "soon")]
