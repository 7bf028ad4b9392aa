"""The path of one plan through the service: parse, idempotency, admission, solve, durable record.

The event loop only coordinates, and parses small bodies itself (well under a millisecond, cheaper
than two thread hand-offs). A larger body is parsed on a small pool, so it never holds `/healthz`;
solving runs on the bounded solver pool (CP-SAT releases the GIL there), which also serialises the
answer and hands its record straight to the plan log's writer thread (group commit,
`service.app.writer`), so the commit starts without a round trip through the event loop and a slow
disk never holds a solver. A plan with a `plan_id` is returned only after its record has committed.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from models import BadRequest, PlanRequest, PlanResponse, decode_json, parse_request
from models.reparse import memo_key, reparse_request
from models.validate import Limits
from service.app.admission import Admission, Overloaded, Ticket
from service.app.config import Settings
from service.app.metrics import Metrics
from service.app.store import PlanRecord, PlanStore, PlanSummary, StoreLost, digest_matches, request_digest
from service.app.warm import WarmCache
from service.app.writer import GroupWriter, describe

log = logging.getLogger("meridian.plan")

Planner = Callable[..., PlanResponse]    # (request, started=perf_counter at receipt) -> plan
# (request, warm state or None, started=...) -> (plan, the warm state its solve learned or None)
Replanner = Callable[..., tuple[PlanResponse, Any]]
T = TypeVar("T")


class Conflict(Exception):
    """An Idempotency-Key reused for a different request."""


class Unavailable(Exception):
    """The service cannot plan right now (engine not importable, plan log down, shutting down)."""


class EngineFailed(Exception):
    """The engine and its heuristic fallback both raised on a request that passed validation."""


@dataclass(frozen=True)
class Outcome:
    """What POST /plan answers: the exact JSON text sent (and, when stored, logged)."""

    body: str
    plan_id: str | None
    replayed: bool = False
    budget_s: float | None = None       # the time limit the engine got, where the server cut it
    replanned: bool = False             # a warm re-plan from the fleet's previous plan answered


@dataclass(frozen=True)
class Parsed:
    """A request validated once, on receipt, and handed as it is to the solver thread: its model, digest,
    the text the plan log keeps, and when it was received (the engine's time limit counts its parse)."""

    digest: str
    original: str        # the request as sent, re-encoded compactly: what the plan log keeps
    model: PlanRequest
    parse_s: float       # receipt to validated model: counted in the plan's time limit and solve_s

    @property
    def time_limit_s(self) -> float:
        return self.model.policy.time_limit_s

    @property
    def deterministic(self) -> bool:
        return self.model.policy.deterministic


# Requests up to this size are parsed on the event loop (well under a millisecond); larger ones on the
# parse pool, so a large body never holds /healthz.
INLINE_PARSE_MAX_BYTES = 16 * 1024
# From this size a request's model, held from its parse until its plan ends, pauses the cyclic collector
# (`collector_hold`): a queue of large models walked by the collector stalled the event loop up to 1 s.
HOLD_COLLECTOR_MIN_BYTES = 64 * 1024


def parse_body(body: bytes, limits: Limits, received: float | None = None, memos: WarmCache | None = None
               ) -> Parsed:
    """Body bytes to a validated request, or BadRequest naming every fault. The size caps come first
    (`models.validate`), so a fleet of a billion nodes costs a comparison, not an enumeration.
    `received` (`time.perf_counter()`) is when the body was in hand; `parse_s` counts from there.
    `memos`: what parsing each fleet's last request learned (`models.reparse`, keyed by the fleet's exact
    JSON): the jobs sent exactly as then are not validated again, and this parse's memo replaces it."""
    received = time.perf_counter() if received is None else received
    data = decode_json(body)
    key = memo_key(data) if memos is not None and memos.size > 0 else None
    if key is None:
        req = parse_request(data, limits=limits)
    else:
        assert memos is not None
        req, memo = reparse_request(data, memos.get(key), limits)
        if memo is not None:
            memos.put(key, memo)
    digest = request_digest(req)
    original = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Parsed(digest, original, req, time.perf_counter() - received)


class CollectorHold:
    """Pauses the cyclic collector while any large request's model is held (parsed, queued or solving).
    Why: the models are millions of objects freed by reference counting; walking them on every full
    collection stalled the event loop, and re-parsing them on the solver thread (the old remedy) cost a
    planet request a second of its time limit. Only a pause this hold made is undone by it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = 0
        self._paused = False

    def acquire(self) -> None:
        with self._lock:
            self._held += 1
            if self._held == 1 and gc.isenabled():
                gc.disable()
                self._paused = True

    def release(self) -> None:
        with self._lock:
            self._held -= 1
            if self._held == 0 and self._paused:
                self._paused = False
                gc.enable()

    @property
    def held(self) -> int:
        return self._held


def _load_engine() -> tuple[Planner, Planner, Replanner, Callable[[Any], str]]:
    from placement import greedy_plan, load_solver, plan
    from placement.replan import fleet_digest, plan_warm

    load_solver()   # at startup, not inside the first request's time limit
    return plan, greedy_plan, plan_warm, fleet_digest


class PlanService:
    """The service's state: pools, admission, plan log, in-flight idempotency keys."""

    def __init__(self, settings: Settings, metrics: Metrics, planner: Planner | None = None,
                 fallback: Planner | None = None, replanner: Replanner | None = None,
                 fleet_key: Callable[[Any], str] | None = None):
        self.settings = settings
        self.metrics = metrics
        self.limits = settings.limits()
        self.planner = planner
        self.fallback = fallback
        # warm re-planning: the engine's by default; off where a planner is given without a replanner
        self.replanner = replanner
        self.fleet_key = fleet_key
        self.warm = WarmCache(settings.warm_cache)
        # what parsing each fleet's last large request learned (models.reparse), as many fleets as warm states
        self.parse_memos = WarmCache(settings.warm_cache)
        self.engine_error: str | None = None
        self.admission = Admission(settings.workers, settings.queue, settings.max_wait_s, settings.min_budget_s)
        metrics.bind(lambda: self.admission.waiting, lambda: self.admission.running)
        self.store: PlanStore | None = None
        self.draining = False
        self._inflight: dict[str, tuple[str, asyncio.Future[Outcome]]] = {}
        self._solve_pool: ThreadPoolExecutor | None = None
        self._cpu_pool: ThreadPoolExecutor | None = None
        self._writer: GroupWriter | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self.collector_hold = CollectorHold()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.draining = False
        if self.planner is None:
            try:
                self.planner, default_fallback, replanner, fleet_key = _load_engine()
                self.fallback = self.fallback or default_fallback
                self.replanner = self.replanner or replanner
                self.fleet_key = self.fleet_key or fleet_key
            except Exception as exc:  # noqa: BLE001 - the service still starts; /readyz says why it cannot plan
                self.engine_error = f"placement engine unavailable: {type(exc).__name__}: {exc}"
                log.error(self.engine_error)
        self.store = await asyncio.to_thread(PlanStore, self.settings.database_url())
        s = self.settings
        self._solve_pool = ThreadPoolExecutor(s.workers, thread_name_prefix="meridian-solve",
                                              initializer=_lower_thread_priority, initargs=(s.solver_nice,))
        self._cpu_pool = ThreadPoolExecutor(2, thread_name_prefix="meridian-parse")
        self._writer = GroupWriter(self.store.put_many)
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="meridian-read")

    def begin_drain(self) -> None:
        """Stop calling this instance ready; in-flight plans still finish."""
        self.draining = True

    async def stop(self) -> None:
        """Finish whatever is still running, then release pools and the database."""
        self.draining = True
        for pool in (self._cpu_pool, self._solve_pool):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, True)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
        if self._read_pool is not None:
            await asyncio.to_thread(self._read_pool.shutdown, True)
        if self.store is not None:
            self.store.close()

    # -- helpers ---------------------------------------------------------------------------------------

    async def _run(self, pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        if pool is None:
            raise Unavailable("the service is not started")
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(pool, ctx.run, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """A plan-log read; a database failure is Unavailable (503), not an internal error."""
        try:
            return await self._run(self._read_pool, fn, *args)
        except StoreLost as exc:
            log.error("plan log lost", extra={"reason": str(exc)})
            raise Unavailable(str(exc)) from None
        except SQLAlchemyError as exc:
            log.exception("plan log read failed")
            raise Unavailable(f"the plan log could not be read ({type(exc).__name__}); retry later") from None

    def _require_store(self) -> PlanStore:
        if self.store is None:
            raise Unavailable("the plan log is not open")
        return self.store

    # -- reads -----------------------------------------------------------------------------------------

    async def get_plan(self, plan_id: str) -> PlanRecord | None:
        return await self._read(self._require_store().get, plan_id)

    async def recent(self, limit: int, status: str | None, before: str | None) -> list[PlanSummary]:
        return await self._read(self._require_store().recent, limit, status, before)

    async def readiness(self) -> dict[str, str]:
        """Each check that decides whether this instance can plan now, 'ok' or why not."""
        checks = {"engine": "ok" if self.planner is not None else (self.engine_error or "not loaded"),
                  "store": "ok", "draining": "no" if not self.draining else "yes: shutting down"}
        try:
            await asyncio.wait_for(self._run(self._read_pool, self._require_store().ping), timeout=5)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["store"] = f"plan log unavailable: {type(exc).__name__}: {exc}"
        else:
            checks["store"] = await self._writable()
        a = self.admission
        full = a.running + a.waiting >= a.workers + a.queue
        checks["capacity"] = "saturated: every solver busy and the queue full" if full else "ok"
        return checks

    async def _writable(self) -> str:
        """'ok', or why the plan log cannot record plans: the last plan's commit failed (a full disk, a
        file system gone read-only, an I/O error) and a committed probe write fails too. The probe runs only
        while the writer's last commit failed, so a healthy server spends nothing on it; once it commits,
        the failure is forgotten and the server is ready again without a plan having to succeed first."""
        writer = self._writer
        failing = writer.failing if writer is not None else None
        if writer is None or failing is None:
            return "ok"
        try:
            await asyncio.wait_for(self._run(self._read_pool, self._require_store().probe_write), timeout=5)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return (f"plan log cannot record plans: the last commit failed ({failing[1]}) and a probe write "
                    f"fails too ({describe(exc)})")
        writer.recovered(failing[0])
        return "ok"

    # -- POST /plan ------------------------------------------------------------------------------------

    async def handle(self, body: bytes, dry_run: bool, key: str | None, warm: bool = True) -> Outcome:
        """Plan one body. `warm`: the fleet's previous plan may answer it warm (`placement.replan`);
        False plans it in full (and its state then starts the fleet's next warm re-plan)."""
        if self.draining:
            raise Unavailable("shutting down")
        if self.planner is None:
            raise Unavailable(self.engine_error or "placement engine not loaded")
        received = time.perf_counter()
        if len(body) <= INLINE_PARSE_MAX_BYTES:   # a fraction of a ms: cheaper than two thread hand-offs
            parsed = parse_body(body, self.limits, received)
            return await self._dispatch(parsed, dry_run, key, warm)
        large = len(body) >= HOLD_COLLECTOR_MIN_BYTES
        if large:
            self.collector_hold.acquire()
        try:
            parsed = await self._run(self._cpu_pool, parse_body, body, self.limits, received, self.parse_memos)
            return await self._dispatch(parsed, dry_run, key, warm)
        finally:
            if large:
                self.collector_hold.release()

    async def _dispatch(self, parsed: Parsed, dry_run: bool, key: str | None, warm: bool = True) -> Outcome:
        if dry_run or key is None:
            return await self._plan(parsed, dry_run, None, warm)
        return await self._keyed(key, parsed, warm)

    async def _keyed(self, key: str, parsed: Parsed, warm: bool = True) -> Outcome:
        """At most one plan per key: a repeat gets the stored plan, a repeat while the first is still
        solving waits for it, and the key with another request is a Conflict."""
        while True:
            entry = self._inflight.get(key)
            if entry is None:
                break
            digest, fut = entry
            if digest != parsed.digest:
                raise Conflict(f"Idempotency-Key {key!r} is being used right now for a different request")
            try:
                outcome = await asyncio.shield(fut)
            except asyncio.CancelledError:
                if fut.cancelled():          # the first request was abandoned: plan it ourselves
                    continue
                raise
            self.metrics.idempotent_replays.inc()
            return replace(outcome, replayed=True)

        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (parsed.digest, fut)
        try:
            existing = await self._read(self._require_store().get_by_key, key)
            if existing is not None:
                outcome = self._replay(key, existing, parsed)
            else:
                outcome = await self._plan(parsed, False, key, warm)
            fut.set_result(outcome)
            return outcome
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()                   # marks it retrieved when nobody else was waiting
            raise
        finally:
            if self._inflight.get(key, (None, None))[1] is fut:
                del self._inflight[key]

    def _replay(self, key: str, rec: PlanRecord, parsed: Parsed) -> Outcome:
        if not digest_matches(rec.request_digest, parsed.digest, parsed.model):
            raise Conflict(f"Idempotency-Key {key!r} was already used for a different request "
                           f"(plan {rec.plan_id}); use a new key for a new request")
        self.metrics.idempotent_replays.inc()
        return Outcome(rec.response, rec.plan_id, replayed=True)

    async def _plan(self, parsed: Parsed, dry_run: bool, key: str | None, warm: bool = True) -> Outcome:
        try:
            ticket = self.admission.admit(parsed.time_limit_s, parsed.deterministic)
        except Overloaded:
            self.metrics.rejected.labels("overloaded").inc()
            raise
        admitted = time.perf_counter()
        fut = asyncio.get_running_loop().run_in_executor(
            self._solve_pool, contextvars.copy_context().run, self._solve, ticket, parsed, admitted, dry_run, key,
            warm)
        try:
            result = await fut
        except asyncio.CancelledError:
            self.admission.finish(ticket, None)     # no-op when the solve already started and finished
            raise
        if result is None:
            raise Unavailable("the plan was abandoned before a worker took it")
        resp, text, _queue_s, _solve_s, budget_s, written, started = result
        cut = budget_s if budget_s < parsed.time_limit_s else None
        replanned = resp.stats is not None and resp.stats.replan is not None
        if dry_run:
            self.metrics.plans.labels(str(resp.status)).inc()
            return Outcome(text, None, budget_s=cut, replanned=replanned)
        plan_id = resp.plan_id
        try:
            if written is None:
                raise Unavailable("the plan log is not open")
            stored = await asyncio.wrap_future(written)
        except Unavailable:
            raise
        except StoreLost as exc:
            log.error("plan log lost", extra={"reason": str(exc)})
            raise Unavailable(f"{exc!s}; nothing was acknowledged") from None
        except Exception as exc:
            log.exception("plan log write failed")
            raise Unavailable(f"the plan log could not record the plan ({type(exc).__name__}); nothing was "
                              "acknowledged, retry later") from None
        self.metrics.store.observe(time.perf_counter() - started)
        self.metrics.plans.labels(str(stored.status)).inc()     # counted once acknowledged: a 503 is no plan
        if stored.plan_id != plan_id:       # another server stored a plan for this key first
            return self._replay(key or "", stored, parsed)
        return Outcome(text, plan_id, budget_s=cut, replanned=replanned)

    def _solve(self, ticket: Ticket, parsed: Parsed, admitted: float, dry_run: bool, key: str | None,
               warm: bool = True) -> tuple[PlanResponse, str, float, float, float, Future | None, float] | None:
        """Runs on a solver thread. Returns the response (with its `plan_id` unless a dry run) and its JSON
        text, the queue wait, the solve time, the budget the engine got, and (unless a dry run) the
        plan log's future for its record, submitted from here, and when it was submitted."""
        budget_s = self.admission.start(ticket)
        if ticket.finished or budget_s <= 0:
            return None
        try:
            req = parsed.model
        except BaseException:
            self.admission.finish(ticket, None)
            raise
        if budget_s < req.policy.time_limit_s:
            self.metrics.budget_cuts.inc()
            req = req.model_copy(update={"policy": req.policy.model_copy(update={"time_limit_s": budget_s})})
        queue_s = time.perf_counter() - admitted
        self.metrics.queue_wait.observe(queue_s)
        t0 = time.perf_counter()
        # the time limit counts the parse (as `meridian plan` does), not the queue wait: that is bounded on
        # its own by --max-wait-s and the budget cut, and counting it here too would cut a queued plan twice
        started = t0 - parsed.parse_s
        worker_s: float | None = None
        try:
            fell_back = False
            assert self.planner is not None
            try:
                resp = self._engine(req, started, warm, dry_run)
            except BadRequest:
                raise
            except Exception:
                self.metrics.engine_errors.inc()
                if self.fallback is None:
                    log.exception("placement engine failed")
                    raise EngineFailed("the placement engine failed on this request") from None
                log.exception("placement engine failed; answering with the heuristic plan")
                try:
                    resp = self.fallback(req)
                except Exception:
                    log.exception("heuristic fallback failed too")
                    raise EngineFailed("the placement engine failed on this request") from None
                fell_back = True
            worker_s = time.perf_counter() - t0
            if not dry_run:
                resp = resp.model_copy(update={"plan_id": uuid.uuid4().hex})
            # one pass from the model to JSON text, here rather than on the event loop
            text = resp.model_dump_json(by_alias=True)
        finally:
            self.admission.finish(ticket, worker_s)     # what a worker was busy for: the queue's estimate
        solve_s = worker_s + parsed.parse_s               # as the engine reports it: parse included
        status = str(resp.status)
        self.metrics.solve.observe(solve_s)
        if isinstance(resp.gap, (int, float)) and math.isfinite(resp.gap):
            self.metrics.gap.observe(resp.gap)
        if fell_back or status == "fallback":
            self.metrics.fallbacks.inc()
        if resp.stats is not None and resp.stats.replan is not None:
            self.metrics.replans.inc()
        if log.isEnabledFor(logging.INFO):
            log.info("planned", extra={"status": status, "jobs": len(req.jobs), "solve_ms": round(solve_s * 1000, 2),
                                       "queue_ms": round(queue_s * 1000, 2), "budget_s": round(budget_s, 3),
                                       "objective": resp.objective, "gap": resp.gap})
        if dry_run:
            return resp, text, queue_s, solve_s, budget_s, None, 0.0
        rec = PlanRecord(plan_id=resp.plan_id, created_at=time.time(), idempotency_key=key,
                         request_digest=parsed.digest, status=status, objective=resp.objective, gap=resp.gap,
                         queue_s=round(queue_s, 6), solve_s=round(solve_s, 6), time_budget_s=budget_s,
                         request=parsed.original, response=text, engine=resp.stats.engine if resp.stats else None,
                         time_limit_s=parsed.time_limit_s, unplaced=len(resp.unplaced or ()))
        writer = self._writer
        return resp, text, queue_s, solve_s, budget_s, (writer.submit(rec) if writer else None), time.perf_counter()


    def _engine(self, req: PlanRequest, started: float, warm: bool, dry_run: bool) -> PlanResponse:
        """The engine's plan. Where warm re-planning is on and the plan is not deterministic, the fleet's
        previous warm state (if any, and unless `warm` is False) goes in and the state this solve learned
        replaces it; a dry run reads the state but leaves it as it was (it changes nothing real)."""
        assert self.planner is not None
        from placement.replan import warm_applies  # loaded with the engine (`_load_engine`)

        if (self.replanner is None or self.fleet_key is None or self.warm.size <= 0
                or not warm_applies(req)):
            return self.planner(req, started=started)
        fleet = self.fleet_key(req.fleet)
        resp, state = self.replanner(req, self.warm.get(fleet) if warm else None, started=started)
        if not dry_run:   # the state of the plan now in force, or none (its plan left nothing to start from)
            if state is not None:
                self.warm.put(fleet, state)
            else:
                self.warm.drop(fleet)
        return resp


def _lower_thread_priority(nice: int) -> None:
    """Run solves (and the CP-SAT threads they start, which inherit it) at a lower CPU priority than the
    event loop: on a saturated machine the kernel then schedules request handling, /healthz and plan-log
    writes first, and solving, which is bounded by wall-clock time limits anyway, takes the rest. Never
    above the niceness the server itself runs at: a server started under `nice -n 19` by root would
    otherwise raise its solvers to `nice` and ahead of its own request handling."""
    try:
        tid = threading.get_native_id()
        if nice > 0 and nice > os.getpriority(os.PRIO_PROCESS, tid):
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except (AttributeError, OSError):      # not Linux, or not permitted: run at normal priority
        pass
