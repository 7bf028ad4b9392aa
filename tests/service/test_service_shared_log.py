"""Two `meridian serve` processes on one plan log, as a second server started beside a running one (or a
rolling restart) has them: the database's own locking serialises their commits (SQLite: WAL and a busy
wait; PostgreSQL: its transactions), plan ids are random (uuid4), and the idempotency key is a unique
column, so both record every plan they acknowledge, each under its own id, and a key is one plan whichever
server gets it. Two servers making a new plan log at the same moment both start."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from service.app.store import PlanStore, plans
from tests.support.service import PG_SKIP_REASON, Server, example_request, pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Server, Server]]:
    """The plan log's URL and two running servers on it, the second started while the first runs."""
    if request.param == "postgresql":
        url = pg_url()
        if url is None:
            pytest.skip(PG_SKIP_REASON)
        args = ["--db-url", url]
    else:
        url = f"sqlite:///{tmp_path / 'plans.sqlite'}"
        args = ["--db-path", str(tmp_path / "plans.sqlite")]
    a = Server(tmp_path, *args, "--workers", "2", name="a").start()
    try:
        b = Server(tmp_path, *args, "--workers", "2", name="b").start()
        try:
            yield url, a, b
        finally:
            b.kill()
    finally:
        a.kill()


def _body(n: int) -> bytes:
    req = example_request()
    req["jobs"][0]["priority"] = 1.0 + n / 1000.0       # a distinct request each time
    return json.dumps(req).encode()


def test_two_servers_on_one_plan_log_record_every_plan_under_its_own_id(shared: tuple[str, Server, Server]) -> None:
    url, a, b = shared
    acked: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def post(srv: Server, first: int) -> None:
        conn = srv.conn()
        try:
            for n in range(first, first + 15):
                conn.request("POST", "/plan", body=_body(n), headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                resp = r.read()
                assert r.status == 200, resp
                with lock:
                    acked.append((json.loads(resp)["plan_id"], resp))
        finally:
            conn.close()

    threads = [threading.Thread(target=post, args=(srv, i * 100)) for i, srv in enumerate((a, b, a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(acked) == 60 and len({plan_id for plan_id, _ in acked}) == 60
    for plan_id, resp in acked:
        for srv in (a, b):                   # each server reads the other's plans too
            status, _, stored = srv.request("GET", f"/plans/{plan_id}")
            assert status == 200 and json.loads(stored)["response"] == json.loads(resp)
    assert a.terminate() == 0 and b.terminate() == 0
    if url.startswith("sqlite"):
        store = PlanStore(url)
        try:
            assert sorted(r.plan_id for r in store.records()) == sorted(plan_id for plan_id, _ in acked)
        finally:
            store.close()


def test_one_idempotency_key_sent_to_both_servers_at_once_is_one_plan(shared: tuple[str, Server, Server]) -> None:
    url, a, b = shared
    body = _body(7)
    key = uuid.uuid4().hex                  # (a PostgreSQL log outlives the test)
    answers: list[tuple[int, bytes]] = []
    barrier = threading.Barrier(4)

    def post(srv: Server) -> None:
        barrier.wait()
        status, _, resp = srv.request("POST", "/plan", body, headers={"Idempotency-Key": key})
        answers.append((status, resp))

    threads = [threading.Thread(target=post, args=(srv,)) for srv in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [status for status, _ in answers] == [200] * 4
    assert len({json.loads(resp)["plan_id"] for _, resp in answers}) == 1
    store = PlanStore(url)
    try:
        rec = store.get_by_key(key)
        assert rec is not None and rec.plan_id == json.loads(answers[0][1])["plan_id"]
    finally:
        store.close()


def test_a_new_plan_log_another_server_is_making_at_this_moment_opens(tmp_path: Path) -> None:
    """The other server's CREATE TABLE is under way (not committed) when this one looks for the table and
    finds none; its own CREATE then met the other's table and its start failed with "table meridian_plans
    already exists". Now the creation is tried again and finds the table made."""
    path = tmp_path / "plans.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("BEGIN IMMEDIATE")
        other.execute(str(CreateTable(plans).compile(dialect=sqlite.dialect())))
        for index in plans.indexes:
            other.execute(str(CreateIndex(index).compile(dialect=sqlite.dialect())))
        timer = threading.Timer(0.5, other.execute, ("COMMIT",))
        timer.start()
        store = PlanStore(f"sqlite:///{path}")      # waits for the other's commit, then finds its table
        timer.join()
        try:
            assert store.count() == 0
        finally:
            store.close()
    finally:
        other.close()
