"""Parsing the next request of a fleet: the jobs sent exactly as before are not validated again.

Why: a control plane sends a planet fleet's request every epoch (20,000 jobs, 6 MB), and between two
epochs about 1 % of its jobs change. Validating every job again was a third of a warm re-plan's answer
(placement/replan.py). What a parse learned is a plain value, `ParseMemo`, that the caller keeps and hands
back with the next request of the fleet (the service keeps one per fleet); nothing here keeps state.

A job is reused only where its JSON object is exactly, type for type, the one validated before (its
`marshal` form: `1`, `1.0` and `true` differ there, though Python calls them equal) and the fleet is
exactly the same, so the request parsed is the one a cold parse gives, value for value (its unchanged
jobs are the previous request's models, shared: read them, never change them). The rules that relate a
job to the fleet held for a reused job before and hold again (same job, same fleet); the rest run as
they do cold: every new or changed job's own rules, unique ids over all jobs, no node overfilled (its
running jobs' devices updated by the jobs that changed), the fleet's and the quotas' rules, the size
limits. On any fault the request is parsed again cold, so a bad request is refused with exactly the
errors, paths and values `parse_request` gives.
"""

from __future__ import annotations

import hashlib
import marshal
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from models.collector import collector_paused
from models.request import Job, PlanRequest
from models.validate import (
    LARGE_BYTES,
    LARGE_JOBS,
    FleetNames,
    Limits,
    decode_json,
    fleet_errors,
    job_errors,
    limit_errors,
    overfill_errors,
    parse_request,
    quota_errors,
    validate_fields,
)

# Past this share of jobs new or changed, the request is parsed cold (measured at planet size: with half
# the jobs changed, as after a full solve's plan is applied, reusing the rest cost more than it saved).
COLD_SHARE = 0.3

# Requests with fewer jobs parse in milliseconds: the service keeps no memo for them.
MEMO_MIN_JOBS = 500

# marshal format 2: type-exact and without back-references, so equal JSON values give equal bytes
# whatever objects they share
_FORMAT = 2


@dataclass(frozen=True)
class ParseMemo:
    """What parsing one request learned, for the next request of its fleet. Read-only."""

    fleet: bytes                 # the fleet's JSON object, exact form
    names: FleetNames            # its names, for the jobs' rules
    raw: dict[str, bytes]        # job id -> its JSON object, exact form
    jobs: dict[str, Job]         # job id -> its model
    used: dict[str, int]         # node -> devices its running jobs hold


def exact_form(value: Any) -> bytes | None:
    """The exact, type-faithful form of a decoded JSON value (None where it holds something else)."""
    try:
        return marshal.dumps(value, _FORMAT)
    except ValueError:
        return None


def memo_key(data: Any) -> str | None:
    """The key a caller keeps a fleet's `ParseMemo` under: the digest of the request's fleet, exact form
    (None for a request too small to gain from a memo, or without a plain JSON fleet)."""
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or len(data["jobs"]) < MEMO_MIN_JOBS:
        return None
    form = exact_form(data.get("fleet"))
    return None if form is None else hashlib.sha256(form).hexdigest()


def reparse_request(data: Any, memo: ParseMemo | None, limits: Limits | None = None
                    ) -> tuple[PlanRequest, ParseMemo | None]:
    """`parse_request(data, limits)` and the memo for the next request of its fleet, reusing from `memo`
    the models of the jobs sent exactly as in the request it was learned on (same fleet). Raises
    BadRequest exactly as `parse_request` does. The memo is None where there is nothing to learn (no job
    list, a fleet that is not plain JSON)."""
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or "fleet" not in data:
        return parse_request(data, limits), None
    jobs_raw: list[Any] = data["jobs"]
    with collector_paused(len(jobs_raw) >= LARGE_JOBS):
        fleet = exact_form(data["fleet"])
        forms = [exact_form(j) for j in jobs_raw]
        req = None
        if memo is not None and fleet is not None and fleet == memo.fleet:
            req = _reuse(data, forms, memo, limits)
        if req is None:
            used: dict[str, int] = {}
            req = parse_request(data, limits, used)
            names = fleet_errors(req.fleet)[1] if memo is None or fleet != memo.fleet else memo.names
        else:
            req, used = req
            names = memo.names
        if fleet is None:
            return req, None
        memo_raw: dict[str, bytes] = {}
        memo_jobs: dict[str, Job] = {}
        for job, form in zip(req.jobs, forms):
            if form is not None:
                memo_raw[job.id] = form
                memo_jobs[job.id] = job
    return req, ParseMemo(fleet, names, memo_raw, memo_jobs, used)


def _reuse(data: dict, forms: list[bytes | None], memo: ParseMemo, limits: Limits | None
           ) -> tuple[PlanRequest, dict[str, int]] | None:
    """The request with the jobs sent as before reused, and its nodes' used devices; None on any fault
    (the caller then parses it cold, for the exact errors) or where nothing is reused."""
    jobs_raw: list[Any] = data["jobs"]
    raw_of, job_of = memo.raw.get, memo.jobs
    reused: list[Job | None] = [None] * len(jobs_raw)
    fresh: list[int] = []
    kept: set[str] = set()
    most = COLD_SHARE * len(jobs_raw)
    for i, (raw, form) in enumerate(zip(jobs_raw, forms)):
        jid = raw.get("id") if isinstance(raw, dict) else None
        if form is not None and isinstance(jid, str) and raw_of(jid) == form:
            reused[i] = job_of[jid]
            kept.add(jid)
        else:
            fresh.append(i)
            if len(fresh) > most:
                return None   # many jobs changed: a cold parse is cheaper than this one's bookkeeping
    try:
        part = validate_fields({**data, "jobs": [jobs_raw[i] for i in fresh]})
    except ValidationError:
        return None
    for i, job in zip(fresh, part.jobs):
        reused[i] = job
    req = part.model_copy(update={"jobs": reused})
    # (the fleet is exactly one that passed before: its own rules hold)
    if limit_errors(req, limits or Limits()) or quota_errors(req):
        return None
    if len(kept) + len(fresh) != len(reused) or len(kept | {job.id for job in part.jobs}) != len(reused):
        return None   # a duplicate id
    # the nodes' devices: the previous request's, less its jobs not reused, plus the fresh jobs'
    used = dict(memo.used)
    touched: set[str] = set()
    for jid, job in job_of.items():
        if jid not in kept and job.current is not None:
            d = job.devices_per_replica
            for n, k in job.current.nodes.items():
                used[n] -= k * d
                touched.add(n)
    if job_errors(((i, reused[i]) for i in fresh), memo.names, used):
        return None
    touched.update(n for job in part.jobs if job.current is not None for n in job.current.nodes)
    if overfill_errors(reused, used, memo.names, touched):
        return None
    return req, used


def reparse_request_json(text: str | bytes, memo: ParseMemo | None, limits: Limits | None = None
                         ) -> tuple[PlanRequest, ParseMemo | None]:
    """`parse_request_json(text, limits)` through `reparse_request`: decode, then reuse what `memo` holds."""
    with collector_paused(len(text) >= LARGE_BYTES):
        return reparse_request(decode_json(text), memo, limits)
