"""A request is parsed and validated once, on receipt, and its time limit counts that parse."""

from __future__ import annotations

import copy
import json
import sqlite3
from typing import Any

import pytest

from datasets.requests import generate
from models import BadRequest, parse_request
from models.validate import Limits
from service.app import Settings, create_app, planning
from service.app.store import legacy_request_digest, request_digest
from service.app.warm import WarmCache
from tests.support.service import assert_plan_passes, json_client


def _large_request() -> dict[str, Any]:
    """A request past the inline-parse size and the collector-hold size (the parse pool's path)."""
    req = generate(devices=256, jobs=300, regions=2, seed=3, time_limit_s=1.0)
    assert len(json.dumps(req)) > planning.HOLD_COLLECTOR_MIN_BYTES
    return req


def test_a_large_request_is_parsed_once(sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = planning.parse_request

    def counting(data: Any, limits: Any = None) -> Any:
        calls.append(len(data.get("jobs", ())))
        return real(data, limits=limits)

    monkeypatch.setattr(planning, "parse_request", counting)
    req = _large_request()
    with json_client(create_app(sqlite_settings)) as c:
        r = c.post("/plan", content=json.dumps(req))
        assert r.status_code == 200, r.text
    assert calls == [300]
    assert_plan_passes(req, r.json(), lp=False)


def test_a_served_plan_counts_its_parse_in_solve_s(sqlite_client: Any) -> None:
    r = sqlite_client.post("/plan", content=json.dumps(_large_request()))
    assert r.status_code == 200, r.text
    resp = r.json()
    parse_s = resp["stats"]["phases_s"]["parse"]
    assert parse_s > 0
    assert resp["solve_s"] >= parse_s
    stored = sqlite_client.get(f"/plans/{resp['plan_id']}").json()
    assert stored["timing"]["solve_s"] >= parse_s


def test_a_bad_large_request_is_422_naming_the_field(sqlite_client: Any) -> None:
    req = _large_request()
    req["jobs"][7]["priority"] = -1
    r = sqlite_client.post("/plan", content=json.dumps(req))
    assert r.status_code == 422, r.text
    errs = r.json()["errors"]
    assert [e["path"] for e in errs] == ["jobs[7].priority"] and errs[0]["value"] == -1


def test_a_key_recorded_with_the_legacy_digest_still_replays(sqlite_settings: Settings) -> None:
    req = _large_request()
    body = json.dumps(req)
    legacy = legacy_request_digest(parse_request(copy.deepcopy(req)).model_dump(mode="json", by_alias=True))
    with json_client(create_app(sqlite_settings)) as c:
        first = c.post("/plan", content=body, headers={"Idempotency-Key": "k-legacy"})
        assert first.status_code == 200, first.text
        with sqlite3.connect(sqlite_settings.db_path) as db:      # as a plan recorded before the new digest
            db.execute("UPDATE meridian_plans SET request_digest = ? WHERE idempotency_key = ?", (legacy, "k-legacy"))
        again = c.post("/plan", content=json.dumps(req, indent=1), headers={"Idempotency-Key": "k-legacy"})
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["plan_id"] == first.json()["plan_id"]
        req["jobs"][0]["priority"] = 2.5
        other = c.post("/plan", content=json.dumps(req), headers={"Idempotency-Key": "k-legacy"})
        assert other.status_code == 409


def test_the_next_large_request_of_a_fleet_reuses_the_jobs_parsed_before() -> None:
    """`parse_body` with the service's memos (`models.reparse`): the jobs sent as before are the models
    parsed before, a changed job is parsed again, and the request is the one a cold parse gives."""
    memos = WarmCache(4)
    req = generate(devices=2000, jobs=600, regions=2, seed=3)
    first = planning.parse_body(json.dumps(req).encode(), Limits(), memos=memos)
    req["jobs"][0]["priority"] = 3.0
    second = planning.parse_body(json.dumps(req).encode(), Limits(), memos=memos)
    assert second.model.jobs[0].priority == 3.0 and second.model.jobs[0] is not first.model.jobs[0]
    assert all(a is b for a, b in zip(second.model.jobs[1:], first.model.jobs[1:]))
    assert second.digest == request_digest(parse_request(copy.deepcopy(req)))
    assert len(memos.fleets()) == 1


def test_a_request_parsed_with_a_memo_is_refused_like_a_cold_one() -> None:
    memos = WarmCache(4)
    req = generate(devices=2000, jobs=600, regions=2, seed=3)
    planning.parse_body(json.dumps(req).encode(), Limits(), memos=memos)
    req["jobs"][4]["priority"] = True
    with pytest.raises(BadRequest) as exc:
        planning.parse_body(json.dumps(req).encode(), Limits(), memos=memos)
    assert [e.path for e in exc.value.errors] == ["jobs[4].priority"]
