"""Warm re-planning through the service: the previous plan's state kept per fleet (LRU, bounded), used for
the next request of that fleet, never for a deterministic one or one that opts out, and said so."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient

from datasets.churn import next_epoch
from datasets.requests import generate
from service.app import Settings, create_app
from service.app.warm import WarmCache
from tests.support.service import assert_plan_passes, json_client


def _base(seed: int) -> dict:
    return generate(800, 200, 2, seed=seed, time_limit_s=0.5)


def _post(c: TestClient, data: dict, query: str = "") -> tuple[dict, dict]:
    r = c.post("/plan" + query, content=json.dumps(data))
    assert r.status_code == 200, r.text
    return r.json(), dict(r.headers)


def _planned_then_next(c: TestClient) -> dict:
    """Plan seed 0's request in full through `c`, then return the next epoch's request (1 job done, 1 new)."""
    base = _base(0)
    first, _ = _post(c, base)
    return next_epoch(base, first, 1, 1, 0)

def test_warm_cache_keeps_the_fleets_used_most_recently() -> None:
    cache = WarmCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.fleets() == ["a", "c"] and cache.get("b") is None
    off = WarmCache(0)
    off.put("a", 1)
    assert off.fleets() == [] and off.get("a") is None


def test_next_epoch_is_answered_warm_and_recorded_so(sqlite_settings: Settings) -> None:
    base = _base(0)
    with json_client(create_app(sqlite_settings)) as c:
        first, h1 = _post(c, base)
        assert first["stats"]["replan"] is None and "x-meridian-replan" not in h1
        nxt = next_epoch(base, first, 1, 1, 0)
        warm, h2 = _post(c, nxt)
        assert h2["x-meridian-replan"] == "warm"
        assert warm["stats"]["engine"] == "replan" and warm["stats"]["replan"]["share"] == 0.01
        assert_plan_passes(nxt, warm)
        rec = c.get(f"/plans/{warm['plan_id']}").json()
        assert rec["response"]["stats"]["replan"] == warm["stats"]["replan"]
        listed = {p["plan_id"]: p for p in c.get("/plans").json()["plans"]}
        assert listed[warm["plan_id"]]["engine"] == "replan" and listed[first["plan_id"]]["engine"] != "replan"
        assert "meridian_plan_replans_total 1.0" in c.get("/metrics").text


def test_opted_out_and_deterministic_requests_are_planned_in_full(sqlite_settings: Settings) -> None:
    with json_client(create_app(sqlite_settings)) as c:
        nxt = _planned_then_next(c)
        out, h = _post(c, nxt, "?warm=false")
        assert out["stats"]["replan"] is None and "x-meridian-replan" not in h
        det = json.loads(json.dumps(nxt))
        det["policy"]["deterministic"] = True
        out, _ = _post(c, det)
        assert out["stats"]["replan"] is None


def test_warm_state_is_kept_per_fleet_and_bounded(sqlite_settings: Settings) -> None:
    a, b = _base(0), _base(1)
    assert a["fleet"] != b["fleet"]
    with json_client(create_app(replace(sqlite_settings, warm_cache=1))) as c:
        first_a, _ = _post(c, a)
        first_b, _ = _post(c, b)          # the one entry is now fleet b's: fleet a's state is gone
        out_a, _ = _post(c, next_epoch(a, first_a, 1, 1, 0))
        assert out_a["stats"]["replan"] is None
        out_b, _ = _post(c, next_epoch(b, first_b, 1, 1, 0))
        assert out_b["stats"]["replan"] is None   # fleet a's full plan just took the one entry
    with json_client(create_app(replace(sqlite_settings, warm_cache=2))) as c:
        first_a, _ = _post(c, a)
        first_b, _ = _post(c, b)
        out_a, _ = _post(c, next_epoch(a, first_a, 1, 1, 0))
        out_b, _ = _post(c, next_epoch(b, first_b, 1, 1, 0))
        assert out_a["stats"]["engine"] == out_b["stats"]["engine"] == "replan"


def test_a_dry_run_reads_the_warm_state_but_leaves_it(sqlite_settings: Settings) -> None:
    with json_client(create_app(sqlite_settings)) as c:
        nxt = _planned_then_next(c)
        dry, _ = _post(c, nxt, "?dry_run=true")
        assert dry["stats"]["engine"] == "replan"
        real, _ = _post(c, nxt)
        assert real["stats"]["replan"]["chain"] == 1   # started from the full plan, not from the dry run


def test_a_small_request_sent_again_is_planned_in_full(sqlite_settings: Settings) -> None:
    # the two-regions example, a handful of jobs: a warm state could only answer an identical request,
    # and the full solve costs about what keeping one does
    data = json.loads((Path(__file__).resolve().parents[2] / "examples" / "two-regions.json").read_text())
    with json_client(create_app(sqlite_settings)) as c:
        _post(c, data)
        again, headers = _post(c, data)
    assert again["stats"]["replan"] is None and again["stats"]["engine"] != "replan"
    assert "x-meridian-replan" not in headers
