"""The operator's view: the paginated plan listing, the pages at `/` and `/plans/{id}/view`, and the API docs
served from the installed package with no outside URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from models import PlanRequest
from models.response import Action
from placement import pause_for_action
from service.app import Settings, create_app
from service.app.store import PlanStore
from tests.support.pages import WAITING, references, waiting_request
from tests.support.service import example_request


def _post(client: TestClient, request: dict) -> dict:
    r = client.post("/plan", json=request)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_listing_pages_newest_first_without_overlap(sqlite_client: TestClient) -> None:
    ids = [_post(sqlite_client, example_request())["plan_id"] for _ in range(5)]
    seen, url = [], "/plans?limit=2"
    while url:
        page = sqlite_client.get(url).json()
        assert len(page["plans"]) <= 2
        seen += [p["plan_id"] for p in page["plans"]]
        url = page["next"]
        assert (url is None) == (page["next_before"] is None)
    assert seen == ids[::-1]


def test_a_listed_plan_carries_what_the_page_shows(sqlite_client: TestClient) -> None:
    plan = _post(sqlite_client, waiting_request())
    (row,) = sqlite_client.get("/plans").json()["plans"]
    assert row["plan_id"] == plan["plan_id"]
    assert (row["status"], row["objective"], row["gap"]) == (plan["status"], plan["objective"], plan["gap"])
    assert row["engine"] == plan["stats"]["engine"]
    assert row["unplaced"] == 2
    assert row["time_limit_s"] == waiting_request()["policy"]["time_limit_s"]
    assert row["budget_cut"] is False
    assert set(row["timing"]) == {"queue_s", "solve_s", "time_budget_s"}
    assert "request" not in row and "response" not in row


def test_the_listing_filters_by_status(sqlite_client: TestClient) -> None:
    status = _post(sqlite_client, example_request())["status"]
    assert len(sqlite_client.get(f"/plans?status={status}").json()["plans"]) == 1
    other = "infeasible" if status != "infeasible" else "optimal"
    assert sqlite_client.get(f"/plans?status={other}").json() == {"plans": [], "next_before": None, "next": None}


@pytest.mark.parametrize(("query", "path", "value"), [
    ("limit=0", "query.limit", "0"),
    ("limit=501", "query.limit", "501"),
    ("limit=many", "query.limit", "many"),
    ("status=done", "query.status", "done"),
    ("before=xyz", "query.before", "xyz"),
    ("before=" + "0" * 32, "query.before", "0" * 32),
])
def test_a_bad_listing_parameter_is_a_422_naming_it(sqlite_client: TestClient, query: str, path: str,
                                                    value: str) -> None:
    r = sqlite_client.get(f"/plans?{query}")
    assert r.status_code == 422
    assert [(e["path"], e["value"]) for e in r.json()["errors"]] == [(path, value)]


def test_the_plan_page_shows_waiting_jobs_pools_and_priced_actions(sqlite_client: TestClient) -> None:
    request = waiting_request()
    plan = _post(sqlite_client, request)
    r = sqlite_client.get(f"/plans/{plan['plan_id']}/view")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for u in plan["unplaced"]:
        assert f"<td><code>{u['code']}</code></td>" in html and u["reason"] in html
    assert {u["job"]: u["code"] for u in plan["unplaced"]} == WAITING
    # One bar per pool, each labelled with devices used of up.
    bars = re.findall(r'<g class="pool" data-pool="([^"]+)">.*?class="value">(\d+)/(\d+)', html)
    assert {b[0] for b in bars} == {"use-a/H100", "use-b/A100", "use-b/A100-3g.40gb", "euw-a/V100"}
    used = {b[0]: int(b[1]) for b in bars}
    assert {b[0]: int(b[2]) for b in bars} == {"use-a/H100": 16, "use-b/A100": 8, "use-b/A100-3g.40gb": 2,
                                               "euw-a/V100": 16}
    req = PlanRequest.model_validate(request)
    jobs = {j.id: j for j in req.jobs}
    for pool, n in used.items():
        cluster, accel = pool.split("/")
        assert n == sum(sum(a["nodes"].values()) * jobs[a["job"]].devices_per_replica
                                 for a in plan["assignments"] if (a["cluster"], a["accelerator"]) == (cluster, accel))
    # Each action with the pause the contract charges for it.
    assert plan["actions"]
    for a in plan["actions"]:
        pause = pause_for_action(req, Action.model_validate(a))
        assert re.search(rf"<td>{re.escape(a['job'])}</td><td>{a['kind']}</td>.*?<td class=\"n\">{pause:.1f}</td>",
                         html)
    # Grouped region -> cluster -> pool.
    assert html.index("<h3>us-east</h3>") < html.index("<h4>use-a</h4>") < html.index("<h3>eu-west</h3>")


def test_the_front_page_lists_plans_and_filters(sqlite_client: TestClient) -> None:
    plan = _post(sqlite_client, waiting_request())
    html = sqlite_client.get("/").text
    assert f'href="/plans/{plan["plan_id"]}/view"' in html
    assert f'<td class="st st-{plan["status"]}">{plan["status"]}</td>' in html
    other = "infeasible" if plan["status"] != "infeasible" else "optimal"
    assert plan["plan_id"] not in sqlite_client.get(f"/?status={other}").text
    bad = sqlite_client.get("/?status=done")
    assert bad.status_code == 200 and "status &#39;done&#39; is not one of" in bad.text


def test_an_unknown_plan_page_is_a_404_page(sqlite_client: TestClient) -> None:
    for pid in ("0" * 32, "nope"):
        r = sqlite_client.get(f"/plans/{pid}/view")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("page", ["/", "/plans/{plan_id}/view", "/docs", "/redoc"])
def test_every_page_references_only_this_service(sqlite_client: TestClient, page: str) -> None:
    plan_id = _post(sqlite_client, waiting_request())["plan_id"] if "{plan_id}" in page else ""
    html = sqlite_client.get(page.format(plan_id=plan_id)).text
    refs = references(html)
    assert refs, page
    assert re.findall(r"https?://", html.replace("http://www.w3.org/2000/svg", "")) == []
    for ref in refs:
        if ref.startswith(("data:", "#")):
            continue
        assert ref.startswith("/") and not ref.startswith("//"), ref
        if ref != "/login":
            assert sqlite_client.get(ref).status_code == 200, ref


def test_the_docs_load_the_bundled_swagger_ui_and_redoc(sqlite_client: TestClient) -> None:
    import fastapi_offline

    from service.app.pages import EMPTY_SVG, REDOC_LOGO

    bundled = Path(fastapi_offline.__file__).parent / "static"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = sqlite_client.get(f"/static/docs/{name}")
        assert served.status_code == 200 and served.content == (bundled / name).read_bytes()
    # ReDoc's, but for its vendor's logo, which it would fetch from a CDN.
    redoc = sqlite_client.get("/static/docs/redoc.standalone.js")
    assert redoc.status_code == 200 and REDOC_LOGO.encode() not in redoc.content
    assert redoc.content.replace(EMPTY_SVG.encode(), REDOC_LOGO.encode()) == (bundled / "redoc.standalone.js").read_bytes()
    assert "/static/docs/swagger-ui-bundle.js" in sqlite_client.get("/docs").text
    assert "/static/docs/redoc.standalone.js" in sqlite_client.get("/redoc").text


def test_the_pages_script_stays_small() -> None:
    from service.app import pages

    static = Path(pages.HERE) / "static"
    assert sum(p.stat().st_size for p in static.glob("*.js")) < 4096


def test_an_older_plan_log_gains_the_listing_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    eng = sqlalchemy.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sqlalchemy.text(
            "CREATE TABLE meridian_plans (plan_id VARCHAR(32) PRIMARY KEY, created_at FLOAT NOT NULL, "
            "idempotency_key VARCHAR(255) UNIQUE, request_digest VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, "
            "objective FLOAT, gap FLOAT, queue_s FLOAT NOT NULL, solve_s FLOAT NOT NULL, "
            "time_budget_s FLOAT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL)"))
        conn.execute(sqlalchemy.text(
            "INSERT INTO meridian_plans VALUES ('" + "a" * 32 + "', 1.5, NULL, 'd', 'optimal', 1.0, 0.0, 0.0, 0.1, "
            "2.0, '{}', '{}')"))
    eng.dispose()
    store = PlanStore(url)
    (old,) = store.recent(10)
    assert (old.plan_id, old.engine, old.unplaced, old.budget_cut) == ("a" * 32, None, None, None)
    store.close()
    with TestClient(create_app(Settings(db_url=url, workers=1))) as client:
        plan = _post(client, example_request())
        assert [p["plan_id"] for p in client.get("/plans").json()["plans"]] == [plan["plan_id"], "a" * 32]
        assert client.get("/").status_code == 200
        assert client.get(f"/plans/{'a' * 32}/view").status_code == 200


def test_the_listing_keyset_holds_on_every_plan_log(client: TestClient) -> None:
    """On SQLite and PostgreSQL (which other tests share: only the newest plans are ours)."""
    ids = [_post(client, example_request())["plan_id"] for _ in range(3)]
    first = client.get("/plans?limit=2").json()
    assert [p["plan_id"] for p in first["plans"]] == ids[:0:-1]
    second = client.get(first["next"]).json()
    assert second["plans"][0]["plan_id"] == ids[0]
