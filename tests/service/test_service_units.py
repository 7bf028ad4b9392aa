"""The service's parts on their own: settings, admission, the plan log, log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from service.app.admission import Admission, Overloaded
from service.app.config import ConfigError, Settings, from_args, from_env
from service.app.logs import JsonFormatter, request_id_var
from service.app.store import PlanRecord, PlanStore, legacy_request_digest
from service.app.writer import GroupWriter
from service.cli import build_parser, main
from tests.support.service import PG_SKIP_REASON, pg_url

# -- settings ------------------------------------------------------------------------------------------


def _serve_args(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_flags_override_environment_which_overrides_defaults() -> None:
    env = {"MERIDIAN_PORT": "9000", "MERIDIAN_WORKERS": "3", "MERIDIAN_DB_PATH": "/tmp/x.sqlite"}
    s = from_args(_serve_args("--port", "9100"), env)
    assert (s.port, s.workers, s.db_path, s.host) == (9100, 3, "/tmp/x.sqlite", "127.0.0.1")
    assert from_env({}) == Settings()


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"MERIDIAN_WORKERS='zero': must be a whole number, got 'zero'"):
        from_env({"MERIDIAN_WORKERS": "zero"})
    with pytest.raises(ConfigError, match=r"MERIDIAN_MAX_WAIT_S='nan': must be a finite number > 0"):
        from_env({"MERIDIAN_MAX_WAIT_S": "nan"})


def test_a_bad_flag_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["meridian serve: --workers 0: must be >= 1, got 0"]


def test_db_url_wins_over_the_sqlite_path() -> None:
    assert Settings(db_path="a.sqlite").database_url() == f"sqlite:///{Path('a.sqlite').resolve()}"
    assert Settings(db_path="a.sqlite", db_url="postgresql+psycopg://u@h/d").database_url() == "postgresql+psycopg://u@h/d"


# -- admission -----------------------------------------------------------------------------------------


def test_admission_bounds_solves_and_queue() -> None:
    a = Admission(workers=2, queue=1, max_wait_s=1000)
    tickets = [a.admit(1.0) for _ in range(3)]      # two solving, one queued
    with pytest.raises(Overloaded, match="queue of 1 is full") as exc:
        a.admit(1.0)
    assert exc.value.retry_after_s >= 1
    a.start(tickets[0])
    a.finish(tickets[0], 0.5)
    assert (a.running, a.waiting) == (0, 2)
    a.admit(1.0)                                     # room again


def test_admission_refuses_what_would_wait_past_the_cap() -> None:
    a = Admission(workers=1, queue=10, max_wait_s=4)
    first = a.admit(8.0)                             # a free worker admits even a long plan
    with pytest.raises(Overloaded, match="past this server's 4 s wait cap") as exc:
        a.admit(1.0)
    assert exc.value.retry_after_s == 4              # ceil(0.5 * 8 s of estimated work ahead)
    a.start(first)
    a.finish(first, 0.1)
    a.admit(1.0)


def test_abandoned_ticket_frees_its_place_once() -> None:
    a = Admission(workers=1, queue=1, max_wait_s=100)
    t = a.admit(1.0)
    a.finish(t, None)
    a.finish(t, None)
    a.start(t)
    assert (a.running, a.waiting) == (0, 0)


def test_estimates_follow_observed_solve_times() -> None:
    a = Admission(workers=1, queue=1, max_wait_s=100)
    for _ in range(30):
        t = a.admit(10.0)
        a.start(t)
        a.finish(t, 0.1)
    assert a.estimate(10.0) == pytest.approx(0.1, abs=0.01)


def test_budgets_are_cut_to_a_fair_share_of_the_wait_cap_under_load() -> None:
    a = Admission(workers=2, queue=100, max_wait_s=20, min_budget_s=0.5)
    assert a.budget(10.0, queued=0) == 10.0                 # an idle server gives the whole time limit
    assert a.budget(10.0, queued=6) == 5.0                  # 2 * 20 / (6 + 2)
    assert a.budget(10.0, queued=1000) == 0.5               # never below the floor
    assert a.budget(10.0, deterministic=True, queued=1000) == 10.0
    assert a.budget(0.2, queued=1000) == 0.2                # under the floor already: untouched
    assert Admission(2, 100, 20, None).budget(10.0, queued=1000) == 10.0


def test_a_started_ticket_carries_its_budget() -> None:
    a = Admission(workers=1, queue=10, max_wait_s=10, min_budget_s=0.5)
    tickets = [a.admit(5.0) for _ in range(4)]
    assert a.start(tickets[0]) == 2.5                       # three queued behind it: 10 / (3 + 1)
    assert tickets[0].budget_s == 2.5 and a.budget_cuts == 1
    a.finish(tickets[0], 2.5)
    assert a.start(tickets[3]) == 3.3333333333333335        # two still queued: 10 / 3


# -- the plan log --------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "postgresql":
        if pg_url() is None:
            pytest.skip(PG_SKIP_REASON)
        s = PlanStore(pg_url())
    else:
        s = PlanStore(f"sqlite:///{tmp_path / 'log.sqlite'}")
    yield s
    s.close()


def _record(key: str | None = None, digest: str = "d" * 64) -> PlanRecord:
    pid = uuid.uuid4().hex
    return PlanRecord(plan_id=pid, created_at=time.time(), idempotency_key=key, request_digest=digest,
                      status="optimal", objective=1.5, gap=0.0, queue_s=0.0, solve_s=0.01, time_budget_s=1.0,
                      request='{"fleet":{"regions":[{"name":"r"}]}}', response=json.dumps({"plan_id": pid}))


def test_store_round_trip(store: PlanStore) -> None:
    rec = _record()
    assert store.put(rec) == rec
    assert store.get(rec.plan_id) == rec
    assert store.get(uuid.uuid4().hex) is None
    assert any(r.plan_id == rec.plan_id for r in store.records())


def test_a_taken_idempotency_key_returns_the_holder(store: PlanStore) -> None:
    key = uuid.uuid4().hex
    first = store.put(_record(key, "a" * 64))
    second = store.put(_record(key, "b" * 64))
    assert second == first
    assert store.get_by_key(key) == first


def test_records_without_keys_never_collide(store: PlanStore) -> None:
    before = store.count()
    for _ in range(3):
        store.put(_record(None))
    assert store.count() == before + 3


def test_a_batch_is_stored_in_one_transaction_and_a_taken_key_returns_its_holder(store: PlanStore) -> None:
    key = uuid.uuid4().hex
    holder = store.put(_record(key, "a" * 64))
    before = store.count()
    batch = [_record(None), _record(key, "b" * 64), _record(None)]
    got = store.put_many(batch)
    assert got == [batch[0], holder, batch[2]]
    assert store.count() == before + 2


def test_group_commit_shares_transactions_and_answers_each_writer_after_its_commit(store: PlanStore) -> None:
    batches: list[int] = []

    def store_many(recs: list[PlanRecord]) -> list[PlanRecord]:
        out = store.put_many(recs)
        batches.append(len(recs))
        return out

    writer = GroupWriter(store_many)

    async def write_all() -> list[PlanRecord]:
        recs = [_record(None) for _ in range(40)]
        got = await asyncio.gather(*(writer.write(r) for r in recs))
        assert got == recs
        return got

    try:
        got = asyncio.run(write_all())
    finally:
        writer.close()
    assert all(store.get(r.plan_id) == r for r in got)       # every answered write is in the log
    assert sum(batches) == 40 and len(batches) < 40


def test_sqlite_log_commits_through_to_disk(tmp_path: Path) -> None:
    s = PlanStore(f"sqlite:///{tmp_path / 'log.sqlite'}")
    with s.engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sqlalchemy.text("PRAGMA synchronous")).scalar() == 2      # FULL
    s.close()


def test_legacy_digest_is_of_the_normalized_request() -> None:
    assert legacy_request_digest({"a": 1, "b": [1, 2]}) == legacy_request_digest({"b": [1, 2], "a": 1})
    assert legacy_request_digest({"a": 1}) != legacy_request_digest({"a": 1.5})


# -- log lines -----------------------------------------------------------------------------------------


def test_log_lines_are_json_with_the_request_id() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    lg = logging.getLogger("meridian.test-json")
    lg.addHandler(handler)
    lg.propagate = False
    token = request_id_var.set("rid-1")
    try:
        lg.warning("planned %s", "x", extra={"jobs": 3})
    finally:
        request_id_var.reset(token)
        lg.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["msg"] == "planned x" and line["level"] == "warning"
    assert line["request_id"] == "rid-1" and line["jobs"] == 3


def test_budgets_shrink_when_plans_overrun_them() -> None:
    a = Admission(workers=2, queue=100, max_wait_s=20, min_budget_s=0.1)
    for _ in range(40):                                   # plans take 1.5x their budget
        t = a.admit(10.0)
        budget = a.start(t)
        a.finish(t, 1.5 * budget)
    assert a.budget(10.0, queued=6) == pytest.approx(5.0 / 1.5, rel=0.01)


def test_a_plan_log_table_from_an_older_version_is_refused_by_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    eng = sqlalchemy.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE meridian_plans (plan_id VARCHAR(32) PRIMARY KEY)"))
    eng.dispose()
    with pytest.raises(RuntimeError, match=r"lacks column\(s\) created_at, gap, .*time_budget_s"):
        PlanStore(url)


def test_an_unreachable_plan_log_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--db-url", "postgresql+psycopg://u:secret@127.0.0.1:1/none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("meridian serve: cannot open the plan log at postgresql+psycopg://u:***@127.0.0.1:1/none")
    assert "secret" not in err[0]
