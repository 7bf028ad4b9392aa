"""Parsing and the cross-field rules of contract v1 that pydantic field types cannot say.

`validate_request` is the one door into the engine: every request passes it before planning,
whether it arrives as JSON (`parse_request_json`, `parse_request`: pydantic's field rules, then
this door) or is built in memory from validated parts (the replay loop: this door alone, with no
JSON round trip per plan). Everything past it may assume a request that names only things that
exist and whose running jobs fit where they run.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from models.collector import collector_paused
from models.errors import BadRequest, FieldError, loc_to_path
from models.fleet_index import fleet_devices, fleet_nodes, node_name
from models.limits import MAX_NODES
from models.request import Fleet, Job, PlanRequest, PlanRequestFailFast

# From this many jobs (or bytes of JSON) a request is parsed with the cyclic collector paused
# (models.collector): half of a planet-size parse (20,000 jobs, 5 MB) was the collector walking it.
LARGE_JOBS = 2_000
LARGE_BYTES = 1 << 20

# A lone surrogate reaches Python only through a JSON (or YAML) escape, or from a caller's str.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    """Sizes past which an engine or service refuses a request (None = no limit)."""

    max_devices: int | None = None
    max_nodes: int | None = None
    max_jobs: int | None = None
    max_time_limit_s: float | None = None


def parse_request(data: Any, limits: Limits | None = None, used: dict[str, int] | None = None) -> PlanRequest:
    """Validate a decoded JSON object as a plan request, or raise BadRequest listing every fault.
    `used`: as `cross_field_errors`."""
    if not isinstance(data, dict):
        raise BadRequest([FieldError("", data if not isinstance(data, (list, dict)) else type(data).__name__,
                                     "a plan request is a JSON object")])
    jobs = data.get("jobs")
    with collector_paused(isinstance(jobs, list) and len(jobs) >= LARGE_JOBS):
        try:
            req = validate_fields(data)
        except ValidationError as exc:
            raise BadRequest([_from_pydantic(e) for e in exc.errors()]) from None
        return validate_request(req, limits, used)


# A list's cross-field faults are listed up to this many, then counted in one more error: a list of a million
# duplicate counts in `replicas.allowed` was a million errors (723 MB), and a 16 MiB body holds eight such lists.
LIST_FAULTS = 20

# Up to this many jobs, pydantic reports the faults of every bad job at once (at most some 20 each: 40,000
# errors, tens of MB); from it on, those of the first bad job only (`PlanRequestFailFast`).
ALL_FAULTS_JOBS = 2_000


def validate_fields(data: dict[str, Any]) -> PlanRequest:
    """pydantic's field rules over a decoded request (raising ValidationError): every bad job's faults, or,
    for a long job list, the first bad job's."""
    jobs = data.get("jobs")
    if not (isinstance(jobs, list) and len(jobs) > ALL_FAULTS_JOBS):
        return PlanRequest.model_validate(data)
    req = PlanRequestFailFast.model_validate(data)
    return PlanRequest.model_construct(req.model_fields_set, **dict(req))


def validate_request(req: PlanRequest, limits: Limits | None = None, used: dict[str, int] | None = None
                     ) -> PlanRequest:
    """The door before planning: the size limits, then every cross-field rule of the contract;
    returns `req` itself or raises BadRequest listing every fault. Field-level rules are pydantic's:
    a request built in memory must be built from validated parts (jobs, fleet, policy)."""
    # sizes first: they are cheap, and a fleet too large to enumerate must not be enumerated
    errors = limit_errors(req, limits or Limits())
    if errors:
        raise BadRequest(errors)
    errors = cross_field_errors(req, used)
    if errors:
        raise BadRequest(errors)
    return req


def decode_json(text: str | bytes) -> Any:
    """Decode JSON text, refusing NaN and Infinity literals (not JSON), text that is not UTF-8, and
    strings holding a lone surrogate (no UTF-8 text can carry one back out), as a BadRequest.
    A leading UTF-8 byte-order mark is ignored (RFC 8259 allows it)."""
    utf8 = isinstance(text, bytes)
    if utf8:
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadRequest([FieldError("", _excerpt(text), f"not UTF-8: byte 0x{text[exc.start]:02x} at offset "
                                         f"{exc.start}")]) from None
    elif text.startswith("\ufeff"):
        text = text[1:]
    try:
        with collector_paused(len(text) >= LARGE_BYTES):
            data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey:
        raise BadRequest([_duplicate_error(text)]) from None
    except (ValueError, RecursionError) as exc:
        why = str(exc)
        if "Exceeds the limit" in why:       # Python's own advice about its interpreter is no use to a caller
            why = "an integer of more than 4,300 digits"
        raise BadRequest([FieldError("", _excerpt(text), f"not valid JSON: {why}")]) from None
    # a lone surrogate comes in through an escape, or in a str given to us (UTF-8 bytes cannot carry one:
    # the strict decoder above refuses it); the substring tests are a scan of memory, the patterns only
    # run on text that has one (two regex scans of a 6 MB planet request took 40-50 ms)
    if (("\\u" in text and _SURROGATE_ESCAPE.search(text))
            or (not utf8 and not text.isascii() and _SURROGATE.search(text))):
        errors = surrogate_errors(data)
        if errors:
            raise BadRequest(errors)
    return data


class _DuplicateKey(Exception):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members as a dict, refusing a key given twice: JSON leaves which one counts to the
    reader (Python keeps the last, other parsers the first), so a control plane and Meridian could
    read two different requests from one text. About 40 us more on the two-regions example, 50 ms on
    a 5.7 MB planet request."""
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _DuplicateKey
    return d


class _Marked(dict):
    twice: str | None = None


def _mark_duplicates(pairs: list[tuple[str, Any]]) -> _Marked:
    d = _Marked(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        d.twice = next(k for k, _ in pairs if k in seen or seen.add(k))
    return d


def _duplicate_error(text: str) -> FieldError:
    """Where the first key given twice is (in document order), by a second decode that marks such
    objects: paid only by a text that is refused."""
    stack: list[tuple[str, Any]] = [("", json.loads(text, object_pairs_hook=_mark_duplicates,
                                                     parse_constant=_reject_constant))]
    while stack:
        p, v = stack.pop()
        if isinstance(v, _Marked) and v.twice is not None:
            key = v.twice
            return FieldError(printable(f"{p}.{key}" if p else key), printable(key),
                              "given more than once in one object (JSON leaves which one counts to the "
                              "reader)")
        if isinstance(v, dict):
            stack.extend((f"{p}.{k}" if p else str(k), x) for k, x in reversed(list(v.items())))
        elif isinstance(v, list):
            stack.extend((f"{p}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    raise AssertionError("a duplicate key was found, then not found again")


def surrogate_errors(data: Any, path: str = "") -> list[FieldError]:
    """Every string (key or value) in decoded JSON/YAML that holds a lone surrogate, by path: such a
    string cannot be printed, logged or stored as UTF-8, so it is refused where it enters."""
    errs: list[FieldError] = []
    stack: list[tuple[str, Any]] = [(path, data)]
    while stack and len(errs) < 50:
        p, v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                errs.append(FieldError(printable(p), printable(v), "holds a lone surrogate (not valid Unicode text)"))
        elif isinstance(v, dict):
            for k, x in v.items():
                kp = f"{p}.{k}" if p else str(k)
                if isinstance(k, str) and _SURROGATE.search(k):
                    errs.append(FieldError(printable(kp), printable(k), "a key holds a lone surrogate "
                                           "(not valid Unicode text)"))
                    continue
                stack.append((kp, x))
        elif isinstance(v, list):
            stack.extend((f"{p}[{i}]", x) for i, x in enumerate(v))
    errs.reverse()
    return errs


def printable(text: str) -> str:
    """`text` with any lone surrogate written as its escape, so it can be printed and encoded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE.search(text) else text


def parse_request_json(text: str | bytes, limits: Limits | None = None) -> PlanRequest:
    """Decode JSON text (rejecting NaN and Infinity literals) and validate it. A large text is parsed
    with the collector paused throughout: paused only within each step, it woke in between to walk
    the whole decoded request once (tens of ms at planet size, far more when it chose a full pass)."""
    with collector_paused(len(text) >= LARGE_BYTES):
        return parse_request(decode_json(text), limits)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _excerpt(text: str | bytes) -> str:
    s = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return printable(s[:60])


def _from_pydantic(err: Any) -> FieldError:
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field (contract v1 has no such field)"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    elif err.get("type") == "too_long":        # the value is a list or map of millions: name its length, not it
        n = (err.get("ctx") or {}).get("actual_length")
        return FieldError(loc_to_path(tuple(err.get("loc", ()))), f"{n} items", msg)
    return FieldError(loc_to_path(tuple(err.get("loc", ()))), err.get("input"), msg)


def cross_field_errors(req: PlanRequest, used: dict[str, int] | None = None) -> list[FieldError]:
    """Every rule of the contract's bad-request list that relates one field to another. `used` (when
    given, empty) receives the devices the running jobs hold per node (`models.reparse` keeps them)."""
    errs, fx = fleet_errors(req.fleet)
    used = {} if used is None else used
    errs += job_errors(enumerate(req.jobs), fx, used, ids={})
    errs += overfill_errors(req.jobs, used, fx)
    errs += quota_errors(req)
    return errs


@dataclass(frozen=True)
class FleetNames:
    """What the jobs' rules look up in the fleet: region and cluster positions, node -> (cluster,
    accelerator, devices)."""

    regions: dict[str, int]
    clusters: dict[str, int]
    node_of: dict[str, tuple[str, str, int]]


def fleet_errors(fleet: Fleet) -> tuple[list[FieldError], FleetNames]:
    """The fleet's own cross-field faults (duplicate and unknown names), and its names for the jobs' rules."""
    errs: list[FieldError] = []
    regions: dict[str, int] = {}
    for i, r in enumerate(fleet.regions):
        if r.name in regions:
            errs.append(FieldError(f"fleet.regions[{i}].name", r.name, "duplicate region name"))
        regions.setdefault(r.name, i)

    seen_links: dict[frozenset[str], int] = {}
    for i, link in enumerate(fleet.links):
        for end in ("a", "b"):
            name = getattr(link, end)
            if name not in regions:
                errs.append(FieldError(f"fleet.links[{i}].{end}", name, "unknown region"))
        if link.a == link.b:
            errs.append(FieldError(f"fleet.links[{i}].b", link.b, "a link joins two different regions"))
        key = frozenset((link.a, link.b))
        if key in seen_links:
            errs.append(FieldError(f"fleet.links[{i}]", f"{link.a}-{link.b}",
                                   f"duplicate link (also fleet.links[{seen_links[key]}])"))
        seen_links.setdefault(key, i)

    clusters: dict[str, int] = {}
    node_of: dict[str, tuple[str, str, int]] = {}   # node -> (cluster, accelerator, devices)
    for ci, c in enumerate(fleet.clusters):
        if c.name in clusters:
            errs.append(FieldError(f"fleet.clusters[{ci}].name", c.name, "duplicate cluster name"))
        clusters.setdefault(c.name, ci)
        if c.region not in regions:
            errs.append(FieldError(f"fleet.clusters[{ci}].region", c.region, "unknown region"))
        for gi, g in enumerate(c.node_groups):
            for k in range(g.count):
                name = node_name(g.prefix, k)
                if name in node_of:
                    errs.append(FieldError(f"fleet.clusters[{ci}].node_groups[{gi}].prefix", g.prefix,
                                           f"node name {name!r} is already used by another node group"))
                    break
                node_of[name] = (c.name, g.accelerator, g.devices)

    unknown = [i for i, n in enumerate(fleet.down_nodes) if n not in node_of]
    errs.extend(FieldError(f"fleet.down_nodes[{i}]", fleet.down_nodes[i], "unknown node")
                for i in unknown[:LIST_FAULTS])
    errs.extend(_more_faults("fleet.down_nodes", len(unknown)))

    return errs, FleetNames(regions, clusters, node_of)


def job_errors(jobs: Iterable[tuple[int, Job]], fx: FleetNames, used: dict[str, int],
               ids: dict[str, int] | None = None) -> list[FieldError]:
    """The faults of the jobs given with their positions, in order (`ids`: the ids met so far, to refuse a
    duplicate; None: not checked here); adds each running job's devices to `used` (node -> devices)."""
    errs: list[FieldError] = []
    regions, clusters, node_of = fx.regions, fx.clusters, fx.node_of
    good_regions: set[tuple[str, ...]] = set()   # job region lists already checked: a planet request repeats a few
    good_nodes: set[tuple[str, str, str]] = set()   # (node, cluster, accelerator) already checked
    for ji, j in jobs:
        # the common case (every check passing) in as few steps as possible: this loop runs over every job
        if ids is not None:
            jid = j.id
            if jid in ids:
                errs.append(FieldError(f"jobs[{ji}].id", jid, f"duplicate job id (also jobs[{ids[jid]}])"))
            else:
                ids[jid] = ji
        rep = j.replicas
        if rep.min > rep.max or rep.allowed is not None:
            errs.extend(_replica_errors(f"jobs[{ji}]", rep))
        if j.data_region is not None and j.data_region not in regions:
            errs.append(FieldError(f"jobs[{ji}].data_region", j.data_region, "unknown region"))
        if j.checkpoint_region is not None and j.checkpoint_region not in regions:
            errs.append(FieldError(f"jobs[{ji}].checkpoint_region", j.checkpoint_region, "unknown region"))
        if j.regions is not None:
            key = tuple(j.regions)
            if key not in good_regions:
                bad = [(ri, r) for ri, r in enumerate(key) if r not in regions]
                errs.extend(FieldError(f"jobs[{ji}].regions[{ri}]", r, "unknown region") for ri, r in bad)
                if not bad:
                    good_regions.add(key)
        cur = j.current
        if cur is None:
            continue
        if cur.cluster not in clusters:
            errs.append(FieldError(f"jobs[{ji}].current.cluster", cur.cluster, "unknown cluster"))
        if cur.accelerator not in j.speed:
            errs.append(FieldError(f"jobs[{ji}].current.accelerator", cur.accelerator,
                                   f"not in the job's speed ({', '.join(sorted(j.speed))})"))
        dpr = j.devices_per_replica
        for n, k in cur.nodes.items():
            if (n, cur.cluster, cur.accelerator) not in good_nodes:
                info = node_of.get(n)
                if info is None:
                    errs.append(FieldError(f"jobs[{ji}].current.nodes.{n}", k, f"unknown node {n!r}"))
                    continue
                nc, na, _ = info
                if nc != cur.cluster:
                    errs.append(FieldError(f"jobs[{ji}].current.nodes.{n}", k,
                                           f"node {n!r} is in cluster {nc!r}, not {cur.cluster!r}"))
                elif na != cur.accelerator:
                    errs.append(FieldError(f"jobs[{ji}].current.nodes.{n}", k,
                                           f"node {n!r} has {na}, not {cur.accelerator}"))
                else:
                    good_nodes.add((n, cur.cluster, cur.accelerator))
            used[n] = used.get(n, 0) + k * dpr
    return errs


def overfill_errors(jobs: list[Job], used: dict[str, int], fx: FleetNames,
                    nodes: Iterable[str] | None = None) -> list[FieldError]:
    """Nodes (of `nodes`, default every node in `used`) whose running jobs hold more devices than they have."""
    errs: list[FieldError] = []
    node_of = fx.node_of
    over = [n for n in (used if nodes is None else nodes) if used.get(n, 0) > node_of[n][2]]
    if over:
        users: dict[str, list[str]] = defaultdict(list)   # named in the error only: gathered only for one
        for j in jobs:
            if j.current is not None:
                for n in j.current.nodes:
                    if n in used:
                        users[n].append(j.id)
        for n in over:
            u, cap = used[n], node_of[n][2]
            errs.append(FieldError(f"fleet.nodes.{n}", u,
                                   f"running jobs overfill node {n!r}: {u} > {cap} devices "
                                   f"(jobs {', '.join(users[n][:5])})"))
    return errs


def quota_errors(req: PlanRequest) -> list[FieldError]:
    """Duplicate quotas."""
    errs: list[FieldError] = []
    quotas: dict[tuple[str, str], int] = {}
    for qi, q in enumerate(req.quotas):
        key = (q.tenant, q.tier)
        if key in quotas:
            errs.append(FieldError(f"quotas[{qi}]", f"{q.tenant}/{q.tier}",
                                   f"duplicate quota for tenant {q.tenant!r}, tier {q.tier!r} (also quotas[{quotas[key]}])"))
        quotas.setdefault(key, qi)
    return errs


def _replica_errors(p: str, rep: Any) -> list[FieldError]:
    """A job's `replicas` faults: min above max, allowed counts repeated or outside [min, max] (the first
    LIST_FAULTS of them, then how many more)."""
    errs: list[FieldError] = []
    if rep.min > rep.max:
        errs.append(FieldError(f"{p}.replicas", rep.model_dump(exclude_none=True), "min must not exceed max"))
    seen_counts: dict[int, int] = {}
    faults = 0
    for ai, a in enumerate(rep.allowed or []):
        if a in seen_counts or not rep.min <= a <= rep.max:
            faults += 1
            if faults <= LIST_FAULTS:
                errs.append(FieldError(f"{p}.replicas.allowed[{ai}]", a,
                                       f"duplicate count (also replicas.allowed[{seen_counts[a]}])" if a in seen_counts
                                       else f"outside [min, max] = [{rep.min}, {rep.max}]"))
        seen_counts.setdefault(a, ai)
    errs.extend(_more_faults(f"{p}.replicas.allowed", faults))
    return errs


def _more_faults(path: str, faults: int) -> list[FieldError]:
    """The one error that counts a list's faults past the first LIST_FAULTS listed (none when there are no more)."""
    more = faults - LIST_FAULTS
    return [FieldError(path, f"{more} more", f"{more} more faults like those above (the first {LIST_FAULTS} are "
                       "listed)")] if more > 0 else []


def limit_errors(req: PlanRequest, limits: Limits) -> list[FieldError]:
    """Refusals for requests beyond configured sizes, each naming the limit."""
    errs: list[FieldError] = []
    if limits.max_jobs is not None and len(req.jobs) > limits.max_jobs:
        errs.append(FieldError("jobs", len(req.jobs), f"too many jobs: the limit is {limits.max_jobs}"))
    nodes = fleet_nodes(req.fleet)
    if limits.max_nodes is not None and nodes > limits.max_nodes:
        errs.append(FieldError("fleet.clusters", nodes, f"too many nodes: the limit is {limits.max_nodes}"))
    elif nodes > MAX_NODES:
        errs.append(FieldError("fleet.clusters", nodes, f"too many nodes: the engine's limit is {MAX_NODES}"))
    devices = fleet_devices(req.fleet)
    if limits.max_devices is not None and devices > limits.max_devices:
        errs.append(FieldError("fleet.clusters", devices, f"too many devices: the limit is {limits.max_devices}"))
    if limits.max_time_limit_s is not None and req.policy.time_limit_s > limits.max_time_limit_s:
        errs.append(FieldError("policy.time_limit_s", req.policy.time_limit_s,
                               f"above this server's cap of {limits.max_time_limit_s} s"))
    return errs
