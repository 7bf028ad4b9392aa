"""The plan log: every stored plan with its request, digest, timing and status.

SQLite (a file, WAL, `synchronous=FULL`) by default, any SQLAlchemy URL (PostgreSQL through
psycopg) where one is given. `put` returns only after the transaction has committed, which is
what lets the service acknowledge a plan: a crash after the ack loses nothing.
The idempotency key is a unique column, so two servers sharing a database cannot both store a
plan for one key; the loser reads the winner's record instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from models import PlanRequest
from models.request import CANONICAL

metadata = MetaData()

plans = Table(
    "meridian_plans",
    metadata,
    Column("plan_id", String(32), primary_key=True),
    Column("created_at", Float, nullable=False),          # unix seconds
    Column("idempotency_key", String(255), unique=True, nullable=True),
    Column("request_digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("objective", Float, nullable=True),
    Column("gap", Float, nullable=True),
    Column("queue_s", Float, nullable=False),
    Column("solve_s", Float, nullable=False),
    Column("time_budget_s", Float, nullable=False),       # the time limit the engine got (may be cut under load)
    # Added later, nullable (older rows lack them): what the plan listing shows without reading the documents.
    # Before the documents, so that SQLite reads them without walking a large row's overflow pages (a table
    # made by an older version gets them appended, and lists more slowly).
    Column("engine", String(16), nullable=True),           # the stage that produced the plan (cpsat, greedy)
    Column("time_limit_s", Float, nullable=True),          # the request's policy.time_limit_s
    Column("unplaced", Integer, nullable=True),            # how many jobs the plan leaves waiting
    Column("request", Text, nullable=False),              # the request as the client sent it (decoded JSON)
    Column("response", Text, nullable=False),             # the response as the client received it
)
Index("ix_meridian_plans_created", plans.c.created_at, plans.c.plan_id)

# Columns a table made by an older version may lack: added in place when the plan log opens.
_ADDED_COLUMNS = ("engine", "time_limit_s", "unplaced")

# What the plan listing reads: every column but the request and response documents.
_SUMMARY_COLUMNS = [c for c in plans.c if c.name not in ("request", "response")]


_INSERT = plans.insert()     # one statement object: SQLAlchemy compiles it once and caches it
_COLUMNS = tuple(plans.c.keys())


def _row(rec: PlanRecord) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in _COLUMNS}


@dataclass(frozen=True)
class PlanRecord:
    plan_id: str
    created_at: float
    idempotency_key: str | None
    request_digest: str
    status: str
    objective: float | None
    gap: float | None
    queue_s: float
    solve_s: float
    time_budget_s: float
    request: str
    response: str
    engine: str | None = None
    time_limit_s: float | None = None
    unplaced: int | None = None

    def to_api(self) -> dict[str, Any]:
        """The record as `GET /plans/{plan_id}` shows it."""
        return {
            "plan_id": self.plan_id,
            "created_at": iso_time(self.created_at),
            "idempotency_key": self.idempotency_key,
            "request_digest": self.request_digest,
            "status": self.status,
            "timing": {"queue_s": self.queue_s, "solve_s": self.solve_s, "time_budget_s": self.time_budget_s},
            "request": json.loads(self.request),
            "response": json.loads(self.response),
        }


@dataclass(frozen=True)
class PlanSummary:
    """One line of the plan listing: the record without its request and response documents."""

    plan_id: str
    created_at: float
    idempotency_key: str | None
    request_digest: str
    status: str
    objective: float | None
    gap: float | None
    queue_s: float
    solve_s: float
    time_budget_s: float
    engine: str | None
    time_limit_s: float | None
    unplaced: int | None

    @property
    def budget_cut(self) -> bool | None:
        """Whether the server cut the plan's time limit under load (None for records older than the column)."""
        return None if self.time_limit_s is None else self.time_budget_s < self.time_limit_s

    def to_api(self) -> dict[str, Any]:
        """The summary as `GET /plans` lists it."""
        return {"plan_id": self.plan_id, "created_at": iso_time(self.created_at), "status": self.status,
                "objective": self.objective, "gap": self.gap, "engine": self.engine, "unplaced": self.unplaced,
                "timing": {"queue_s": self.queue_s, "solve_s": self.solve_s, "time_budget_s": self.time_budget_s},
                "time_limit_s": self.time_limit_s, "budget_cut": self.budget_cut,
                "idempotency_key": self.idempotency_key, "request_digest": self.request_digest}


def iso_time(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat()


def request_digest(req: PlanRequest) -> str:
    """sha256 of a validated request's canonical text (`models.request.CANONICAL`: defaults filled in,
    fields in the model's order, name-keyed maps sorted): two bodies that mean the same request share a
    digest, whatever their whitespace, key order or spelled-out defaults. One pass in pydantic's
    serializer: a third of the time the sorted `json.dumps` of `legacy_request_digest` took on a
    planet-size request. Records written before it keep their digests; `digest_matches` reads both."""
    return hashlib.sha256(req.model_dump_json(by_alias=True, context=CANONICAL).encode("utf-8")).hexdigest()


def digest_matches(stored: str, digest: str, req: PlanRequest) -> bool:
    """Whether a recorded digest is this request's, in today's definition or (for a plan recorded before
    it) the legacy one, so an Idempotency-Key retried across the upgrade still finds its plan."""
    return stored == digest or stored == legacy_request_digest(req.model_dump(mode="json", by_alias=True))


def legacy_request_digest(normalized: dict[str, Any]) -> str:
    """The digest plans were recorded with before `request_digest`: sha256 of the normalized dict's
    sorted JSON. Contract v1.1's `replicas.allowed` counts only where set, so a request without it keeps
    the digest it had before v1.1."""
    jobs = normalized.get("jobs")
    if isinstance(jobs, list) and any(isinstance(j, dict) and isinstance(j.get("replicas"), dict)
                                      and "allowed" in j["replicas"] and j["replicas"]["allowed"] is None
                                      for j in jobs):
        normalized = {**normalized, "jobs": [_without_unset_allowed(j) for j in jobs]}
    blob = json.dumps(normalized, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _without_unset_allowed(job: Any) -> Any:
    rep = job.get("replicas") if isinstance(job, dict) else None
    if not (isinstance(rep, dict) and "allowed" in rep and rep["allowed"] is None):
        return job
    return {**job, "replicas": {k: v for k, v in rep.items() if k != "allowed"}}


class StoreSchemaError(RuntimeError):
    """The database holds a plan log table this version cannot use."""


class StoreLost(RuntimeError):
    """The plan log file is gone, replaced or not writable: a record written now would not be found
    again at its path, so nothing may be acknowledged (the service answers 503)."""


class PlanStore:
    """Synchronous access to the plan log; the service calls it from worker threads."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = _make_engine(url, self.is_sqlite)
        _create_table(self.engine)
        db = make_url(url).database if self.is_sqlite else None
        # the file this store opened, by (device, inode): the same path later naming another file (or
        # none) means the log was deleted or replaced under the running server
        self.path = os.path.abspath(db) if db and db != ":memory:" and not db.startswith("file:") else None
        self.identity = _identity(self.path) if self.path else None
        have = self._add_columns({c["name"] for c in inspect(self.engine).get_columns(plans.name)})
        missing = sorted(set(plans.c.keys()) - have - set(_ADDED_COLUMNS)) or sorted(set(plans.c.keys()) - have)
        if missing:
            self.engine.dispose()
            raise StoreSchemaError(f"the plan log table {plans.name!r} at {make_url(url).render_as_string()} lacks "
                                   f"column(s) {', '.join(missing)}: an older version made it; migrate it or use "
                                   "another database")

    def _add_columns(self, have: set[str]) -> set[str]:
        """Add the nullable listing columns to a table an older version made (and its time index); another
        server doing the same at once is fine. Returns the columns present afterwards."""
        if not set(_ADDED_COLUMNS) - have or not {"plan_id", "created_at", "response"} <= have:
            return have
        for name in _ADDED_COLUMNS:
            if name in have:
                continue
            col = plans.c[name]
            ddl = f"ALTER TABLE {plans.name} ADD COLUMN {name} {col.type.compile(self.engine.dialect)}"
            try:
                with self.engine.begin() as conn:
                    conn.execute(text(ddl))
            except SQLAlchemyError:
                pass                     # added by another server meanwhile; the inspection below decides
        for index in plans.indexes:
            try:
                index.create(self.engine, checkfirst=True)
            except SQLAlchemyError:
                pass
        return {c["name"] for c in inspect(self.engine).get_columns(plans.name)}

    def put(self, rec: PlanRecord) -> PlanRecord:
        """Store `rec` durably and return it; if its idempotency key is already taken, return the record that
        holds the key instead (the caller compares digests)."""
        self.check_file()
        try:
            with self.engine.begin() as conn:
                conn.execute(_INSERT, [_row(rec)])
        except IntegrityError:
            if rec.idempotency_key is None:
                raise
            existing = self.get_by_key(rec.idempotency_key)
            if existing is None:
                raise
            return existing
        self.check_file()       # deleted or replaced while the row was committing: do not acknowledge it
        return rec

    def put_many(self, recs: list[PlanRecord]) -> list[PlanRecord]:
        """Store every record in one transaction (one commit, one sync to disk, however many plans):
        the plan log's group commit. Returns what `put` would for each; when a key is taken, the batch
        is stored record by record instead, so one conflict costs its neighbours nothing."""
        if len(recs) == 1:
            return [self.put(recs[0])]
        self.check_file()
        try:
            with self.engine.begin() as conn:
                conn.execute(_INSERT, [_row(r) for r in recs])
        except IntegrityError:
            return [self.put(r) for r in recs]
        self.check_file()       # deleted or replaced while the rows were committing: do not acknowledge them
        return list(recs)

    def get(self, plan_id: str) -> PlanRecord | None:
        self.check_file()
        with self.engine.connect() as conn:
            row = conn.execute(select(plans).where(plans.c.plan_id == plan_id)).mappings().first()
        return PlanRecord(**row) if row else None

    def get_by_key(self, key: str) -> PlanRecord | None:
        self.check_file()
        with self.engine.connect() as conn:
            row = conn.execute(select(plans).where(plans.c.idempotency_key == key)).mappings().first()
        return PlanRecord(**row) if row else None

    def recent(self, limit: int, status: str | None = None, before: str | None = None) -> list[PlanSummary]:
        """Up to `limit` plans, newest first, with `status` if given, older than plan `before` if given
        (keyset pagination on (created_at, plan_id): a page stays stable while new plans arrive). Raises
        KeyError when `before` names no plan."""
        self.check_file()
        query = select(*_SUMMARY_COLUMNS).order_by(plans.c.created_at.desc(), plans.c.plan_id.desc()).limit(limit)
        if status is not None:
            query = query.where(plans.c.status == status)
        with self.engine.connect() as conn:
            if before is not None:
                t = conn.execute(select(plans.c.created_at).where(plans.c.plan_id == before)).scalar_one_or_none()
                if t is None:
                    raise KeyError(before)
                query = query.where(or_(plans.c.created_at < t,
                                        and_(plans.c.created_at == t, plans.c.plan_id < before)))
            return [PlanSummary(**row) for row in conn.execute(query).mappings()]

    def records(self, batch: int = 500) -> Iterator[PlanRecord]:
        """Every record, oldest first (for consistency checks and exports)."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(
                select(plans).order_by(plans.c.created_at, plans.c.plan_id))
            for row in result.mappings():
                yield PlanRecord(**row)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(plans)).scalar_one())

    def ping(self) -> None:
        """Raise unless the database answers and, for SQLite, its file is still the one opened and takes a
        write (a row inserted and rolled back: a file SQLite could open only read-only fails here; a write
        the disk refuses does not, as the row never reaches it: `probe_write` asks that)."""
        self.check_file()
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT 1"))
                return
            _insert_rolled_back(conn)

    def probe_write(self) -> None:
        """Raise unless the plan log takes a committed write now. Asked only while plans' commits are failing
        (it costs a sync to disk, so never per plan), so that readiness comes back once the log can record
        plans again and not before. SQLite: the header's user_version is written back with its own value, one
        page through the WAL and its sync as a plan's commit goes, that no reader sees (a row inserted and
        rolled back, `ping`'s probe, never reaches the disk: a full disk or a failing write passes it).
        Other databases: `ping`'s probe row, inserted and rolled back, which a read-only transaction or
        database, a revoked privilege or a table that cannot grow refuses; PostgreSQL syncs its own WAL and
        stops when it cannot, which the next connection shows."""
        self.check_file()
        if not self.is_sqlite:
            with self.engine.connect() as conn:
                _insert_rolled_back(conn)
            return
        with self.engine.begin() as conn:
            version = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
            conn.exec_driver_sql(f"PRAGMA user_version = {version}")

    def check_file(self) -> None:
        """Raise StoreLost when the SQLite file at this store's path is not the one it opened."""
        if self.path is None:
            return
        now = _identity(self.path)
        if now is None:
            raise StoreLost(f"the plan log {self.path} was deleted under the running server; restart it")
        if now != self.identity:
            raise StoreLost(f"the plan log {self.path} was replaced by another file under the running server; "
                            "restart it")

    def close(self) -> None:
        self.engine.dispose()


def _insert_rolled_back(conn: Connection) -> None:
    """A probe row inserted and rolled back: the database takes a write, and nothing reaches the log."""
    trans = conn.begin()
    try:
        conn.execute(plans.insert().values(plan_id="probe-" + os.urandom(8).hex(), created_at=0.0,
                                           request_digest="", status="probe", queue_s=0.0, solve_s=0.0,
                                           time_budget_s=0.0, request="", response=""))
    finally:
        trans.rollback()


# How often opening a new plan log is tried while another server is making the same one.
CREATE_TRIES = 5


def _create_table(engine: Engine) -> None:
    """Create the plan log's table and index unless they exist. Two servers started at once on a new plan
    log race here, and the loser used to fail its start: its CREATE TABLE met the other's table ("table
    meridian_plans already exists"; PostgreSQL: a duplicate relation or pg_type row), or, on SQLite, its
    switch to WAL met the other's connection ("database is locked", answered at once, without the busy
    wait, where waiting could deadlock). Each is the other server succeeding, so the creation is tried
    again; any other failure (a lock held past the busy wait among them) is raised at once."""
    for attempt in range(1, CREATE_TRIES + 1):
        t0 = time.monotonic()
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except SQLAlchemyError as exc:
            if attempt == CREATE_TRIES or not _lost_creation_race(exc, time.monotonic() - t0):
                raise
        time.sleep(0.05 * attempt)


def _lost_creation_race(exc: SQLAlchemyError, took_s: float) -> bool:
    orig = getattr(exc, "orig", None)
    busy = str(getattr(orig, "sqlite_errorname", "")).startswith("SQLITE_BUSY")
    return (isinstance(exc, IntegrityError) or "already exists" in str(orig or exc)
            or (busy and took_s < 1.0))          # at once: the deadlock answer, not the busy wait run out


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


CONNECT_TIMEOUT_S = 10


def _make_engine(url: str, is_sqlite: bool) -> Engine:
    if not is_sqlite:
        # a database that accepts the connection and never answers (a firewall, the wrong service) must fail
        # the start, not hang it: libpq's connect timeout, in seconds
        args = {"connect_timeout": CONNECT_TIMEOUT_S} if make_url(url).get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8, connect_args=args)
    path = make_url(url).database
    # a URI filename (`file:...?mode=ro&uri=true`) is SQLite's to resolve: no folder is made for it
    if path and path != ":memory:" and not path.startswith("file:"):
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers run beside the writer; FULL makes every commit reach the disk before it returns.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine
