"""THE epoch loop, written once for every backend: state -> contract request -> plan -> apply -> run -> state.

    run_loop(executor, arrivals, scheduler, config, controller=None, observers=())

Interface (backend-agnostic; the simulated and torch executors both plug in here):
- `executor`: any `executor.interface.Executor`. The loop calls `apply(request, plan, now_s)` after each
  plan, `run_epoch(now_s, epoch_s)` every epoch, and `placements()` for each request's `current`. It
  reads `EpochResult.finished` (and, when the result has them, the simulator's `finish_s`,
  `held_device_s`, `busy_device_s`, `paused_device_s`, `idle_device_s`, `capacity_device_s`;
  otherwise a job finishes at the epoch's end and holds its devices all epoch). The executor must
  already know each job's work (`SimExecutor(work)` / `add_job`), the loop does not submit it.
- `arrivals`: `Arrival(submit_s, job, work)` in any order; `job` is the contract `Job` template
  (tier, tenant, replicas, speed, devices_per_replica, checkpoint_gb, data_region); the loop sets its
  `priority`, `current` and `checkpoint_region` every epoch.
- `scheduler`: an object with `name`, `decide(request, state) -> PlanResponse` (the planner, fifo,
  las...) and `replan_when_quiet(state) -> bool` (whether it wants a plan in an epoch where nothing
  changed: no arrival, completion or failure since the last plan); optionally `startable(state)`, the
  pending jobs a backfill could start (fifo: its head only), so that no backfill is asked for when
  none of them fits.
- `controller`: `priorities(state) -> {job id: priority > 0}`, called before each plan (a control
  plane's view); None leaves every priority at the template's.
- `observers`: callables `(record: EpochRecord, state: LoopState)` after every epoch (metrics, progress);
  a record sums the epoch's steps (busy, paused, idle, capacity, work, completions, arrivals) and lists
  the seconds of its backfill plans (`backfill_s`); `planner_s` is the boundary's full plan.

Time runs on a fixed grid `start_s + k * epoch_s` of full plans (the scheduler's `policy.mode` "epoch").
With `config.backfill_window_s` set the loop also acts on events between boundaries. At each arrival,
and each completion while some job waits, the arrivals join; when every waiting job that could start
fits on the free devices at its largest size, all together, the event opens a short batch
(`config.backfill_fit_window_s`, 5 s by default: nothing is gained by waiting longer, and a burst
of submissions is one plan); otherwise it opens a batch of `backfill_window_s`, and that much later (capped at the boundary) the batch's arrivals join and, when some waiting
job's replica fits on a free node, the scheduler gets a backfill request (`policy.mode: "backfill"`,
the same `epoch_s`: running jobs stay exactly where they are, waiting ones start on free devices)
which the executor applies at once. With `backfill_fit_window_s=None` every batch waits
`backfill_window_s` (the loop before it). The executor runs the epoch in the steps between those moments (`run_epoch(t, step)`), so a job starts when its plan says and
finishes when its work is done; `executor.next_finish_s(t)` says when the next job finishes (None: the
backend cannot tell, and the loop polls it every window). Without a window a job submitted in
`(t - epoch_s, t]` joins at `t` and the epoch runs in one step (the loop before backfill, exactly).
Epochs with no job at all are skipped in one step to the next arrival (with a window, to the boundary
before it). Failures come from
`config.outages(t) -> set of down nodes` (the environment; node and region outages) and from
`EpochResult.failed_nodes` (what a backend saw fail, down for good); both take effect at the next
boundary, where the scheduler must fail the jobs on them over. A job no node pool of the fleet (or its
quota) could ever hold at its minimum size is rejected at arrival rather than waiting for ever.
The loop stops when no job is left and none will arrive, when `config.until(state)` holds, or at
`config.max_s`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from executor.actions import response_from_placements
from executor.interface import Executor
from models import Fleet, Job, Placement, PlanRequest, PlanResponse, Policy, Quota, validate_request
from models.fleet_index import fleet_index
from placement import contract


@dataclass(frozen=True)
class Arrival:
    submit_s: float
    job: Job
    work: float        # device-seconds at speed 1


@dataclass
class JobState:
    arrival: Arrival
    admitted_s: float
    status: str = "pending"            # pending | running | done | rejected
    placement: Placement | None = None
    priority: float = 1.0
    attained_device_s: float = 0.0     # devices x time held (Tiresias's attained service)
    run_s: float = 0.0                 # time held devices (working or paused)
    wait_s: float = 0.0                # time active without devices, from submission
    first_start_s: float | None = None
    finish_s: float | None = None
    last_stop_s: float | None = None
    last_start_s: float | None = None  # when its current run began (it went from waiting to running)
    checkpoint_region: str | None = None
    reject_reason: str = ""
    actions: Counter[str] = field(default_factory=Counter)
    placed_on: dict[tuple[str, str], None] = field(default_factory=dict)   # (cluster, accelerator) ever held, in order

    @property
    def id(self) -> str:
        return self.arrival.job.id


@dataclass
class LoopConfig:
    fleet: Fleet
    epoch_s: float = 300.0
    policy: Policy = field(default_factory=Policy)
    quotas: Sequence[Quota] = ()
    start_s: float | None = None                 # first boundary; default: the first arrival's time
    outages: Callable[[float], set[str]] | None = None
    until: Callable[[LoopState], bool] | None = None
    max_s: float = math.inf
    # Between epochs: a backfill plan (`policy.mode: "backfill"`) this many seconds after the first
    # arrival or completion of a batch; None plans on the epoch grid alone (the loop before backfill).
    backfill_window_s: float | None = None
    # With a window: a batch whose waiting jobs all fit at their largest (`_Env.all_fit`) closes this
    # soon after its first event instead (0: planned at the event itself; None: every batch waits
    # `backfill_window_s`). Short, so an arrival onto free devices barely waits, yet a burst of
    # submissions seconds apart is one plan, not one each.
    backfill_fit_window_s: float | None = 5.0


@dataclass
class EpochRecord:
    t_s: float
    dt_s: float
    planned: bool = False
    planner_s: float = 0.0
    plan_status: str = ""
    arrivals: int = 0
    completions: int = 0
    running: int = 0
    pending: int = 0
    down_nodes: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    preempt_lost_device_s: float = 0.0      # devices x charged pause of the jobs preempted at this epoch
    busy_device_s: float = 0.0
    paused_device_s: float = 0.0
    idle_device_s: float = 0.0
    capacity_device_s: float = 0.0
    work: dict[str, float] = field(default_factory=dict)
    backfill_s: list[float] = field(default_factory=list)   # seconds of each backfill plan made during the epoch
    failed_nodes: list[str] = field(default_factory=list)   # reported by the executor; down from the next boundary


@dataclass
class LoopState:
    now_s: float
    epoch_s: float
    jobs: dict[str, JobState] = field(default_factory=dict)
    active: dict[str, None] = field(default_factory=dict)     # ids of pending and running jobs, arrival order
    down: frozenset[str] = frozenset()
    epochs_since_plan: int = 0
    plans: int = 0
    region_of: dict[str, str] = field(default_factory=dict)   # cluster -> region
    # job id -> (priority, current, checkpoint_region, checkpoint_gb, the request's Job): the last
    # request's copy of each job, reused while none of those changed (most jobs, most requests)
    request_jobs: dict[str, tuple] = field(default_factory=dict, repr=False)

    def pending(self) -> list[JobState]:
        return [self.jobs[j] for j in self.active if self.jobs[j].status == "pending"]

    def running(self) -> list[JobState]:
        return [self.jobs[j] for j in self.active if self.jobs[j].status == "running"]


class Scheduler(Protocol):
    name: str

    def decide(self, request: PlanRequest, state: LoopState) -> PlanResponse: ...

    def replan_when_quiet(self, state: LoopState) -> bool: ...


class Controller(Protocol):
    def priorities(self, state: LoopState) -> dict[str, float]: ...


# `all_fit` says no above this many waiting jobs that could start (the fleet is contended: batch them).
ALL_FIT_MAX_JOBS = 64

Observer = Callable[[EpochRecord, LoopState], None]


def run_loop(executor: Executor, arrivals: Iterable[Arrival], scheduler: Scheduler, config: LoopConfig,
             controller: Controller | None = None, observers: Sequence[Observer] = ()) -> LoopState:
    """Replay `arrivals` through `scheduler` and `executor` until done (see the module docstring)."""
    queue = sorted(arrivals, key=lambda a: a.submit_s)
    T = float(config.epoch_s)
    window = config.backfill_window_s
    if window is not None and not window > 0:
        raise ValueError(f"backfill_window_s must be > 0 (or None), got {window!r}")
    fit_window = config.backfill_fit_window_s
    if fit_window is not None and not fit_window >= 0:
        raise ValueError(f"backfill_fit_window_s must be >= 0 (or None), got {fit_window!r}")
    if fit_window is not None and window is not None:
        fit_window = min(fit_window, window)
    start = config.start_s if config.start_s is not None else (math.floor(queue[0].submit_s / T) * T if queue else 0.0)
    fx = fleet_index(config.fleet)
    state = LoopState(now_s=start, epoch_s=T, region_of=dict(fx.region_of))
    env = _Env(queue, _pools(config.fleet), {(q.tenant, q.tier): q.devices for q in config.quotas},
               dict(zip(fx.names, fx.devices, strict=True)))
    reported_down: set[str] = set()
    static_down = set(config.fleet.down_nodes)          # down in the fleet description itself
    changed = True
    while True:
        now = state.now_s
        admitted = env.admit(state, now)
        down = frozenset((config.outages(now) if config.outages else set()) | reported_down | static_down)
        if down != state.down:
            changed = True
        state.down = down
        if admitted:
            changed = True
        if (config.until is not None and config.until(state)) or now >= config.max_s:
            break
        if not state.active:
            if env.next >= len(queue):
                break
            sub = queue[env.next].submit_s
            if window is None:
                nxt = start + math.ceil((sub - start) / T) * T
            else:   # acting on events: skip to the boundary before the arrival, which joins mid-epoch
                nxt = start + math.floor((sub - start) / T) * T
            dt = max(nxt - now, T) if window is None else nxt - now
            if window is None or dt >= T:
                up = sum(d for n, d in env.capacity.items() if n not in down)
                rec = EpochRecord(t_s=now, dt_s=dt, capacity_device_s=up * dt, idle_device_s=up * dt,
                                  down_nodes=len(down))
                for ob in observers:
                    ob(rec, state)
                state.now_s = now + dt
                continue
            # an idle epoch in which a job arrives: the executor runs it in steps, so it must know
            # today's fleet (and down nodes) first: an empty plan tells it
            req = build_request(state, config, executor)
            executor.apply(req, response_from_placements(req, {}, engine="idle"), now)

        rec = EpochRecord(t_s=now, dt_s=T, arrivals=admitted, down_nodes=len(down))
        if state.active and (changed or scheduler.replan_when_quiet(state)):
            _plan_and_apply(executor, scheduler, controller, config, state, rec)
            changed = False
        else:
            state.epochs_since_plan += 1
        rec.running = sum(1 for j in state.active if state.jobs[j].status == "running")
        rec.pending = len(state.active) - rec.running
        t, end = now, now + T
        close: float | None = None     # when the open batch's backfill plan runs (None: no batch open)
        while True:
            look = False               # this step ends at an event, which may open a batch
            if window is None:
                nxt = end
            elif close is not None:
                nxt = close
            elif fit_window is not None:
                ev = env.next_event(executor, state, t)
                look = t < ev < end
                nxt = ev if look else min(max(ev, t) + window, end)
            else:
                nxt = env.next_batch_end(executor, state, t, end, window)
            finished = _advance(executor, state, rec, t, nxt - t, env.capacity, down)
            if finished:
                changed = True
            t = nxt
            if t >= end:
                break
            got = env.admit(state, t)          # mid-epoch: an event, or a batch closes at t
            rec.arrivals += got
            if got:
                changed = True
            if close is not None:              # the batch closes: its events came before (it opened on one)
                close = None
            elif not (got or finished):
                continue
            free = env.free_devices(executor, state, down)
            if not env.room_for_pending(scheduler, state, free):
                continue
            if look:                           # a batch opens: more events may come before its plan
                wait = fit_window if env.all_fit(state, free) else window
                if wait > 0:
                    close = min(t + wait, end)
                    continue
            state.now_s = t
            _plan_and_apply(executor, scheduler, controller, config, state, rec, backfill=True)
            state.now_s = now
        for n in rec.failed_nodes:
            reported_down.add(n)
        for ob in observers:
            ob(rec, state)
        state.now_s = now + T
    return state


class _Env:
    """The loop's view of what arrives and of the fleet's room (arrival queue, pools, quotas, node sizes)."""

    def __init__(self, queue: list[Arrival], pools: list[tuple[str, str, list[int]]],
                 quota: dict[tuple[str, str], int], capacity: dict[str, int]):
        self.queue, self.pools, self.quota, self.capacity = queue, pools, quota, capacity
        self.next = 0

    def admit(self, state: LoopState, now: float) -> int:
        """Admit every arrival submitted by `now`; a job that could never fit is rejected at once."""
        admitted = 0
        while self.next < len(self.queue) and self.queue[self.next].submit_s <= now:
            a = self.queue[self.next]
            self.next += 1
            st = JobState(arrival=a, admitted_s=now, priority=a.job.priority, wait_s=now - a.submit_s)
            if a.job.id in state.jobs:
                raise ValueError(f"job {a.job.id}: arrives twice")
            state.jobs[a.job.id] = st
            why = _never_fits(a.job, self.pools, self.quota)
            if why:
                st.status, st.reject_reason, st.finish_s = "rejected", why, None
                continue
            state.active[a.job.id] = None
            admitted += 1
        return admitted

    def next_batch_end(self, executor: Executor, state: LoopState, t: float, end: float, window: float) -> float:
        """When the batch that the next event opens closes: `window` after the next arrival or
        completion (the executor's prediction; a backend that cannot predict is polled every window),
        capped at the epoch's end."""
        return min(max(self.next_event(executor, state, t, while_status="running"), t) + window, end)

    def next_event(self, executor: Executor, state: LoopState, t: float, while_status: str = "pending") -> float:
        """When the next event that could let a waiting job start happens: the next arrival, or the
        next completion while some job is `while_status` (the executor's prediction; `t` when the
        backend cannot tell, which then polls every window); inf when none will."""
        ev = self.queue[self.next].submit_s if self.next < len(self.queue) else math.inf
        if any(state.jobs[j].status == while_status for j in state.active):
            fin = executor.next_finish_s(t)
            ev = min(ev, t if fin is None else fin)
        return ev

    def all_fit(self, state: LoopState, free_devices: list[int]) -> bool:
        """Whether every waiting job that could start now at its fewest replicas (alone, on the up
        nodes' free devices) fits there at its largest size, all of them together (packed first-fit,
        the widest replicas first, any accelerator): then a backfill plan now starts them all at their
        best and waiting for more events buys nothing, so the batch closes soon."""
        free = list(free_devices)
        jobs = []
        for jid in state.active:
            st = state.jobs[jid]
            if st.status != "pending":
                continue
            job = st.arrival.job
            if sum(f // job.devices_per_replica for f in free) >= job.replicas.bottom:
                jobs.append(job)
            if len(jobs) > ALL_FIT_MAX_JOBS:
                return False
        jobs.sort(key=lambda j: -j.devices_per_replica)
        for job in jobs:
            left, dpr = job.replicas.top, job.devices_per_replica
            for i, f in enumerate(free):
                k = min(f // dpr, left)
                if k:
                    free[i] -= k * dpr
                    left -= k
                    if left == 0:
                        break
            if left:
                return False
        return True

    def free_devices(self, executor: Executor, state: LoopState, down: frozenset[str]) -> list[int]:
        """Free devices per up node (that have any), in fleet order."""
        used: dict[str, int] = {}
        for jid, p in executor.placements().items():
            st = state.jobs.get(jid)
            dpr = st.arrival.job.devices_per_replica if st is not None else 1
            for n, k in p.nodes.items():
                used[n] = used.get(n, 0) + k * dpr
        free = [d - used.get(n, 0) for n, d in self.capacity.items() if n not in down]
        return [f for f in free if f > 0]

    def room_for_pending(self, scheduler: Scheduler, state: LoopState, free: list[int]) -> bool:
        """Whether some job the scheduler could start now (`scheduler.startable(state)` when it has
        it, e.g. fifo's head; else every pending job) fits at its fewest replicas on the up nodes'
        free devices, any accelerator: a necessary condition, so no backfill that could start a job
        is skipped, and the many that could not are never built."""
        pick = getattr(scheduler, "startable", None)
        cands = pick(state) if pick is not None else [state.jobs[j] for j in state.active
                                                       if state.jobs[j].status == "pending"]
        needs = {(st.arrival.job.devices_per_replica, st.arrival.job.replicas.min) for st in cands}
        if not needs:
            return False
        return any(sum(f // dpr for f in free) >= lo for dpr, lo in needs)


def _advance(executor: Executor, state: LoopState, rec: EpochRecord, now: float, dt: float,
             capacity_all: dict[str, int], down: frozenset[str]) -> bool:
    """Run the executor from `now` for `dt` seconds and account it into `state` and `rec`; True when
    a job finished."""
    res = executor.run_epoch(now, dt)
    finish_s = getattr(res, "finish_s", {})
    held = getattr(res, "held_device_s", None)
    jobs = state.jobs
    for jid in state.active:
        st = jobs[jid]
        if st.status != "running":
            st.wait_s += dt
            continue
        devices = st.placement.replicas * st.arrival.job.devices_per_replica
        h = held.get(jid, 0.0) if held is not None else devices * (finish_s.get(jid, now + dt) - now)
        st.attained_device_s += h
        st.run_s += h / devices
    for jid in res.finished:
        st = state.jobs.get(jid)
        if st is None or st.status != "running":
            raise RuntimeError(f"executor reports job {jid} finished, but it is {st.status if st else 'unknown'}")
        st.status, st.finish_s, st.placement = "done", finish_s.get(jid, now + dt), None
        st.last_stop_s = st.finish_s
        del state.active[jid]
    rec.failed_nodes.extend(res.failed_nodes)
    rec.completions += len(res.finished)
    if hasattr(res, "busy_device_s"):
        rec.busy_device_s += res.busy_device_s
        rec.paused_device_s += res.paused_device_s
        rec.idle_device_s += res.idle_device_s
        rec.capacity_device_s += res.capacity_device_s
        if rec.work:
            for j, w in res.work.items():
                rec.work[j] = rec.work.get(j, 0.0) + w
        else:
            rec.work = res.work
    else:
        up = sum(d for n, d in capacity_all.items() if n not in down)
        busy = sum(held.values()) if held else 0.0
        rec.capacity_device_s += up * dt
        rec.busy_device_s += busy
        rec.idle_device_s += up * dt - busy
    return bool(res.finished)


def build_request(state: LoopState, config: LoopConfig, executor: Executor, mode: str | None = None) -> PlanRequest:
    """The contract request for this epoch: every active job, running ones with `current`, preempted
    ones with `checkpoint_region`, the fleet with today's down nodes. Built from validated parts
    without a JSON round trip, and passed through the engine's one door (`validate_request`)."""
    current = executor.placements()
    jobs: list[Job] = []
    last, reuse = state.request_jobs, {}
    for jid in state.active:
        st = state.jobs[jid]
        cur = current.get(jid)
        ckpt = None if cur is not None else st.checkpoint_region
        tmpl = st.arrival.job
        hit = last.get(jid)
        if hit is not None and hit[0] == st.priority and hit[1] is cur and hit[2] == ckpt and \
                hit[3] == tmpl.checkpoint_gb:   # the same copy as the last request's (jobs are never edited)
            job = hit[4]
        else:
            job = tmpl.model_copy(update={"priority": st.priority, "current": cur, "checkpoint_region": ckpt})
        reuse[jid] = (st.priority, cur, ckpt, tmpl.checkpoint_gb, job)
        jobs.append(job)
    state.request_jobs = reuse
    fleet = config.fleet.model_copy(update={"down_nodes": sorted(state.down)})
    policy = config.policy if mode is None else config.policy.model_copy(update={"mode": mode})
    return validate_request(PlanRequest.model_construct(epoch_s=state.epoch_s, fleet=fleet, jobs=jobs,
                                                        quotas=list(config.quotas), policy=policy))


def _plan_and_apply(executor: Executor, scheduler: Scheduler, controller: Controller | None,
                    config: LoopConfig, state: LoopState, rec: EpochRecord, backfill: bool = False) -> None:
    if controller is not None:
        for jid, p in controller.priorities(state).items():
            state.jobs[jid].priority = p
    req = build_request(state, config, executor, mode="backfill" if backfill else None)
    t0 = time.perf_counter()
    resp = scheduler.decide(req, state)
    if backfill:
        rec.backfill_s.append(time.perf_counter() - t0)
    else:
        rec.planner_s = time.perf_counter() - t0
        rec.planned, rec.plan_status = True, resp.status
        state.plans += 1
        state.epochs_since_plan = 0
    applied = executor.apply(req, resp, state.now_s)
    now = state.now_s
    for a in applied:
        st = state.jobs[a.job]
        st.actions[a.kind] += 1
        rec.actions[a.kind] += 1
        if a.kind == "preempt" and st.placement is not None:
            devices = st.placement.replicas * st.arrival.job.devices_per_replica
            rec.preempt_lost_device_s += devices * contract.charged_s(a.modelled_pause_s, state.epoch_s)
    placements = executor.placements()
    for jid in state.active:
        st = state.jobs[jid]
        p = placements.get(jid)
        if p is None and st.status == "running":
            st.status, st.last_stop_s = "pending", now
            st.checkpoint_region = state.region_of[st.placement.cluster]
        elif p is not None:
            if st.first_start_s is None:
                st.first_start_s = now
            if st.status != "running":
                st.last_start_s = now
            st.status = "running"
            st.checkpoint_region = state.region_of[p.cluster]
            st.placed_on[(p.cluster, p.accelerator)] = None
        st.placement = p


def _pools(fleet: Fleet) -> list[tuple[str, str, list[int]]]:
    """(region, accelerator, device counts of its nodes) per (cluster, accelerator)."""
    out: dict[tuple[str, str], tuple[str, str, list[int]]] = {}
    for c in fleet.clusters:
        for g in c.node_groups:
            out.setdefault((c.name, g.accelerator), (c.region, g.accelerator, []))[2].extend([g.devices] * g.count)
    return list(out.values())


def never_fits(jobs: list[Job], fleet: Fleet, quotas: dict[tuple[str, str], int]) -> list[str]:
    """Per job, why no plan on `fleet` could ever run it at its minimum size ('' if one could): the rule the
    loop rejects an arrival by, for callers that can refuse jobs before a run starts."""
    pools = _pools(fleet)
    return [_never_fits(job, pools, quotas) for job in jobs]


def _never_fits(job: Job, pools: list[tuple[str, str, list[int]]], quota: dict[tuple[str, str], int]) -> str:
    """Why no plan could ever run `job` at its minimum size ('' if one could)."""
    need = job.replicas.min * job.devices_per_replica
    q = quota.get((job.tenant, job.tier))
    if q is not None and q < need:
        return f"its {job.tier} quota of {job.tenant} ({q} devices) is below its minimum of {need}"
    for region, acc, devs in pools:
        if acc not in job.speed or (job.regions is not None and region not in job.regions):
            continue
        if sum(d // job.devices_per_replica for d in devs) >= job.replicas.min:
            return ""
    return (f"no cluster holds {job.replicas.min} replica(s) of {job.devices_per_replica} device(s) on "
            f"{', '.join(sorted(job.speed))}")
