"""An ideal reference, not a scheduler Meridian could run: event-driven 2D-LAS with free, instant preemption.

What issue 11's moonshot compares cpsat against: Tiresias's discretised two-dimensional LAS (Gu et
al., NSDI'19) in continuous time, on the same jobs, fleet and window as a replay, but without the
contract. Nothing here plans through `placement` or runs through `executor.loop`: no epochs, no
scheduling delay, no start or checkpoint pause, no premium protection, and a job may be preempted,
resumed or moved between nodes at no cost. Every figure Meridian measures above it is a price of the
contract (its pauses, its epoch grid, its batching) or of a different order of jobs.

- **Priority**: attained service in GPU-seconds (devices held x time, Tiresias's 2D: space and time),
  least first, discretised into queues by `thresholds_device_s` (default one threshold at 3,600
  GPU-seconds, one GPU-hour: two queues, as Meridian's `las` baseline and the Tiresias simulator's
  example). Within a queue (`ReplaySetup.ideal_order`), by default as Tiresias's simulator orders it:
  a job joins the back of its queue on arrival or demotion and, after every re-pack, the waiting jobs
  move behind the running ones (their order kept), so a running job is passed only by a job of a
  higher queue or one already ahead of it; `fifo` orders every queue by submission instead (as the
  `las` baseline does), and `srpt` is the clairvoyant reference: one queue ordered by the device-seconds
  of trace work each job has left, least first (running jobs re-ranked at every event as theirs
  shrinks), what knowing every duration buys with preemption free. fifo preempts running jobs for older
  waiting ones of the same queue (on
  Philly days 44-51, 64 x 8 GPUs: 14,074 preemptions and 1,922 s above the floor, against 6,236 and
  435 s). Queues rather than a continuous order
  because with free preemption a continuous LAS swaps two jobs of equal service at every instant
  (processor sharing, which a gang of GPUs cannot do); the queue boundaries are exact events, so no
  re-evaluation step is needed: a running job's demotion happens at the instant its service crosses a
  threshold.
- **Events**: every arrival, completion and demotion re-packs at once. The jobs are taken in priority
  order and each is admitted when it fits beside the jobs admitted before it (fit-first, skipping one
  that does not: work-conserving, as Tiresias's simulator); a running job not admitted is preempted
  (its progress is kept), a waiting one admitted starts. Admitted jobs keep their nodes; a started one
  goes best-fit onto free devices and, where no node has room for a replica, the pool is re-packed
  first-fit-decreasing (moving is free too).
- **Shapes**: a job runs rigid at its `max` replicas (its trace GPU count; capped, like `las`, at what
  one pool could ever hold), each replica's `devices_per_replica` devices on one node, all replicas in
  one (cluster, accelerator) pool, at `replicas x devices_per_replica x speed` work per second: at its
  trace duration whenever it holds its GPUs. Whether a set of jobs fits is exact by device count where
  every replica size divides every node of the pool (powers of two on 8-GPU nodes: the bench's fleet;
  first-fit-decreasing then packs any set whose devices fit), and first-fit-decreasing otherwise.
- **Not modelled**: outages, quotas, remote-data penalties (a replay with any of them is refused).

The result is a `replay.harness.ReplayRun` with the same job states and per-epoch records (on the
replay's epoch grid, for accounting only) as the loop's, so `replay.metrics` reports it with the same
summary keys and jobs.csv columns, the same measured jobs and the same floor.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass, field

from datasets.attributes import JobSpec
from datasets.fleets import fleet_accelerators
from executor.loop import Arrival, EpochRecord, JobState, LoopState
from models import Fleet
from replay.harness import ReplayRun, ReplaySetup, Window, job_template

NAME = "las2d-ideal"
EPS = 1e-6
ORDERS = ("tiresias", "fifo", "srpt")


@dataclass
class _Pool:
    cluster: str
    region: str
    accelerator: str
    sizes: list[int]                   # devices per node
    free: list[int]                    # free devices per node
    exact: bool = True                 # fits by device count (every replica size divides every node)

    @property
    def devices(self) -> int:
        return sum(self.sizes)


@dataclass
class _Job:
    st: JobState
    dpr: int
    options: list[tuple[int, int, float]]   # (pool index, replicas, work per second) where it can run
    remaining: float                         # work left at `mark`
    attained: float = 0.0                    # device-seconds held at `mark`
    mark: float = 0.0                        # when the fields above were last brought up to date
    queue: int = 0
    key: tuple = ()
    version: int = 0
    pool: int | None = None                  # while running: where, with how many replicas on which nodes
    replicas: int = 0
    rate: float = 0.0
    nodes: dict[int, int] = field(default_factory=dict)


@dataclass
class IdealLedger:
    """What `check_invariants` and the pool metrics read from a replay's executor: the jobs that
    finished, in order, and the device-seconds held per accelerator type per epoch."""

    finished: list[str] = field(default_factory=list)
    held_by_type: dict[float, dict[str, float]] = field(default_factory=dict)


class _Records:
    """Per-epoch records on the replay's grid, filled as intervals are settled (accounting only)."""

    def __init__(self, start_s: float, epoch_s: float, capacity: int):
        self.start, self.T, self.capacity = start_s, epoch_s, capacity
        self.recs: dict[int, EpochRecord] = {}
        self.ledger = IdealLedger()

    def at(self, t: float, ending: bool = False) -> EpochRecord:
        """The epoch holding `t`; with `ending` (a completion), one ending at `t` holds it."""
        k = max(0, math.ceil((t - self.start) / self.T) - 1 if ending else int((t - self.start) // self.T))
        rec = self.recs.get(k)
        if rec is None:
            rec = self.recs[k] = EpochRecord(t_s=self.start + k * self.T, dt_s=self.T)
        return rec

    def held(self, jid: str, acc: str, devices: int, rate: float, t0: float, t1: float) -> None:
        """`devices` held (doing `rate` work per second) over [t0, t1), split over the epochs it spans."""
        t = t0
        while t < t1:
            rec = self.at(t)
            end = min(t1, rec.t_s + self.T)
            dt = end - t
            rec.busy_device_s += devices * dt
            rec.work[jid] = rec.work.get(jid, 0.0) + rate * dt
            by = self.ledger.held_by_type.setdefault(rec.t_s, {})
            by[acc] = by.get(acc, 0.0) + devices * dt
            t = end

    def finish(self, end_s: float) -> list[EpochRecord]:
        """Every epoch from the start to `end_s` (the last one cut there), capacity and idle filled in."""
        n = max(1, math.ceil((end_s - self.start) / self.T - 1e-12))
        out = []
        for k in range(n):
            rec = self.recs.get(k) or EpochRecord(t_s=self.start + k * self.T, dt_s=self.T)
            rec.dt_s = min(self.T, end_s - rec.t_s) if k == n - 1 else self.T
            rec.capacity_device_s = self.capacity * rec.dt_s
            rec.idle_device_s = rec.capacity_device_s - rec.busy_device_s
            out.append(rec)
        return out


def run_ideal_las(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window,
                  thresholds_device_s: Sequence[float] | None = None) -> ReplayRun:
    """Replay the window's jobs on `fleet` under the ideal 2D-LAS (module docstring); deterministic.
    The measured jobs, the window and the stop rule are the harness's (`replay.harness.run_replay`)."""
    from replay.checks import check_replay_inputs

    check_replay_inputs(specs, fleet, setup, window)
    if setup.outages is not None or setup.quotas:
        raise ValueError(f"{NAME}: outages and quotas are not modelled by the ideal reference")
    th = sorted(thresholds_device_s if thresholds_device_s is not None else setup.ideal_thresholds_device_s)
    lo, m_from, m_until = window.bounds_s(specs)
    chosen = [s for s in specs if lo <= s.submit_s < m_until]
    measured = {s.id for s in chosen if s.submit_s >= m_from}
    pools = _pools(fleet)
    accs = fleet_accelerators(fleet)
    T = setup.epoch_s
    start = math.floor(lo / T) * T if chosen else 0.0
    max_s = window.stop_s(specs, setup.max_days)
    recs = _Records(start, T, sum(p.devices for p in pools))
    state = LoopState(now_s=start, epoch_s=T,
                      region_of={c.name: c.region for c in fleet.clusters})
    jobs: dict[str, _Job] = {}
    arrivals = [Arrival(s.submit_s, job_template(s, accs), s.work) for s in chosen]
    for a in arrivals:
        if a.job.id in jobs:
            raise ValueError(f"job {a.job.id}: arrives twice")
        jobs[a.job.id] = _Job(JobState(arrival=a, admitted_s=a.submit_s), a.job.devices_per_replica,
                              _options(a, pools), a.work, mark=a.submit_s)
    _mark_exact(pools, jobs.values())
    if setup.ideal_order not in ORDERS:
        raise ValueError(f"{NAME}: ideal_order must be one of {', '.join(ORDERS)}, got {setup.ideal_order!r}")
    if setup.ideal_order == "srpt":
        th = []      # one queue: the order is the work left, not the service attained
    sim = _Sim(jobs, pools, th, recs, state, setup.ideal_order)
    open_measured = len(measured)
    i, t = 0, start
    while True:
        nxt = min(arrivals[i].submit_s if i < len(arrivals) else math.inf, sim.next_event())
        if not math.isfinite(nxt) or nxt > max_s or open_measured == 0:
            break
        t = nxt
        finished = sim.complete_and_demote(t)
        open_measured -= sum(1 for j in finished if j in measured)
        while i < len(arrivals) and arrivals[i].submit_s <= t:
            if sim.arrive(arrivals[i].job.id, t) and arrivals[i].job.id in measured:
                open_measured -= 1      # rejected: finished for good
            i += 1
        sim.repack(t)
    stop = t if open_measured == 0 or not math.isfinite(nxt) else max_s
    sim.settle_all(stop)
    state.now_s = stop
    records = recs.finish(stop if stop > start else start + T)
    run = ReplayRun(state, records, measured, m_from, m_until, setup, recs.ledger,  # type: ignore[arg-type]
                    {s.id: s for s in chosen}, None, fleet)
    return run


class _Sim:
    """The event loop's state: the jobs in priority order, the running ones, the finish and demotion heaps."""

    def __init__(self, jobs: dict[str, _Job], pools: list[_Pool], th: list[float], recs: _Records,
                 state: LoopState, within: str = "fifo"):
        self.jobs, self.pools, self.th, self.recs, self.state = jobs, pools, th, recs, state
        self.within = within
        self.order: list[tuple] = []               # sorted keys (queue, submit, seq, id) of the active jobs
        self.running: set[str] = set()
        self.fin: list[tuple[float, int, str, int]] = []
        self.dem: list[tuple[float, int, str, int]] = []
        self.seq = 0

    # -- events --------------------------------------------------------------------------------------
    def next_event(self) -> float:
        for heap in (self.fin, self.dem):
            while heap and self.jobs[heap[0][2]].version != heap[0][3]:
                heapq.heappop(heap)
        return min(self.fin[0][0] if self.fin else math.inf, self.dem[0][0] if self.dem else math.inf)

    def complete_and_demote(self, t: float) -> list[str]:
        done = []
        while self.fin and self.fin[0][0] <= t:
            _, _, jid, v = heapq.heappop(self.fin)
            j = self.jobs[jid]
            if j.version != v:
                continue
            self._settle(j, t)
            self._release(j)
            self.running.discard(jid)
            self.order.pop(bisect_left(self.order, j.key))
            st = j.st
            st.status, st.finish_s, st.last_stop_s, st.placement = "done", t, t, None
            del self.state.active[jid]
            j.version += 1
            self.recs.at(t, ending=True).completions += 1
            self.recs.ledger.finished.append(jid)
            done.append(jid)
        while self.dem and self.dem[0][0] <= t:
            _, _, jid, v = heapq.heappop(self.dem)
            j = self.jobs[jid]
            if j.version != v:
                continue
            self._settle(j, t)
            self._requeue(j)
            self._push_demotion(j, t)
        return done

    def arrive(self, jid: str, t: float) -> bool:
        """Admit an arrival; True when no pool could ever hold it (rejected at once)."""
        j = self.jobs[jid]
        st = j.st
        st.admitted_s = t
        self.state.jobs[jid] = st
        self.recs.at(t).arrivals += 1
        if not j.options:
            need = st.arrival.job.replicas.min * j.dpr
            st.status = "rejected"
            st.reject_reason = (f"no cluster holds {st.arrival.job.replicas.min} replica(s) of {j.dpr} device(s) "
                                f"on {', '.join(sorted(st.arrival.job.speed))} ({need} devices)")
            return True
        self.state.active[jid] = None
        j.mark = t
        self.seq += 1
        j.queue = self._queue_of(j.attained)
        second = st.arrival.submit_s if self.within == "fifo" else _left_device_s(j) if self.within == "srpt" \
            else self._tick()
        j.key = (j.queue, second, self.seq, jid)
        insort(self.order, j.key)
        return False

    # -- the re-pack -----------------------------------------------------------------------------------
    def repack(self, t: float) -> None:
        if self.within == "srpt":     # a running job's work left shrinks: it may now rank before a waiting one
            for jid in self.running:
                j = self.jobs[jid]
                self._settle(j, t)
                j.key = (0, _left_device_s(j), *j.key[2:])
            self.order = sorted(self.jobs[k[3]].key for k in self.order)
        free = [p.devices for p in self.pools]
        members: list[list[tuple[int, int]]] = [[] for _ in self.pools]    # (replicas, dpr) admitted per pool
        total = sum(free)
        chosen: dict[str, tuple[int, int, float]] = {}
        for key in self.order:
            if total <= 0:
                break
            j = self.jobs[key[3]]
            opts = j.options
            if j.pool is not None and len(opts) > 1:
                opts = sorted(opts, key=lambda o: o[0] != j.pool)
            for p, reps, rate in opts:
                need = reps * j.dpr
                if need > free[p]:
                    continue
                pool = self.pools[p]
                if not pool.exact and not _ffd(pool.sizes, members[p] + [(reps, j.dpr)]):
                    continue
                free[p] -= need
                total -= need
                members[p].append((reps, j.dpr))
                chosen[key[3]] = (p, reps, rate)
                break
        stop = [jid for jid in self.running if chosen.get(jid, (None,))[0] != self.jobs[jid].pool
                or chosen[jid][1] != self.jobs[jid].replicas]
        for jid in stop:
            j = self.jobs[jid]
            self._settle(j, t)
            self._release(j)
            self.running.discard(jid)
            if jid not in chosen:
                self._preempt(j, t)
        starts = [jid for jid in chosen if jid not in self.running]
        repacked: set[int] = set()
        for jid in sorted(starts, key=lambda x: (-chosen[x][1] * self.jobs[x].dpr, self.jobs[x].key)):
            j = self.jobs[jid]
            p, reps, rate = chosen[jid]
            moved = j.st.status == "running"      # changed pool or size: free as well
            if not moved:
                self._settle(j, t)
            j.pool, j.replicas, j.rate = p, reps, rate
            if p not in repacked and not self._place_best_fit(j):
                # no node has room for a replica: re-pack the pool with everything admitted to it
                for other in starts:
                    if chosen[other][0] == p:
                        o = self.jobs[other]
                        o.pool, o.replicas = p, chosen[other][1]
                self._repack_pool(p, [self.jobs[x] for x in chosen if chosen[x][0] == p], t, set(starts))
                repacked.add(p)
            self.running.add(jid)
            self._start(j, t, moved)
        if self.within == "tiresias":
            self._pending_to_the_back()

    def _pending_to_the_back(self) -> None:
        """Tiresias's simulator after every round: in each queue the waiting jobs move behind the running
        ones, keeping their order, so a running job is passed only by a higher queue or a job ahead of it."""
        out: list[tuple] = []
        order, n, i = self.order, len(self.order), 0
        while i < n:
            q = order[i][0]
            pend = []
            while i < n and order[i][0] == q:
                k = order[i]
                if k[3] in self.running:
                    out.append(k)
                else:
                    pend.append(k)
                i += 1
            for k in pend:
                j = self.jobs[k[3]]
                j.key = (q, self._tick(), k[2], k[3])
                out.append(j.key)
        self.order = out

    def _place_best_fit(self, j: _Job) -> bool:
        pool = self.pools[j.pool]
        got: dict[int, int] = {}
        for _ in range(j.replicas):
            best = -1
            for n, f in enumerate(pool.free):
                if f >= j.dpr and (best < 0 or f < pool.free[best]):
                    best = n
            if best < 0:
                for n, k in got.items():
                    pool.free[n] += k * j.dpr
                return False
            pool.free[best] -= j.dpr
            got[best] = got.get(best, 0) + 1
        j.nodes = got
        return True

    def _repack_pool(self, p: int, on: list[_Job], t: float, starting: set[str]) -> None:
        """First-fit-decreasing of `on` (every job admitted to pool `p`) from empty nodes; a job that ran
        before this re-pack (not in `starting`) and lands elsewhere counts a move. FFD's result depends only on the replica sizes, so a set the
        admission checked packs here too."""
        pool = self.pools[p]
        pool.free = list(pool.sizes)
        on.sort(key=lambda j: (-j.dpr, j.key))
        for j in on:
            before = dict(j.nodes)
            j.nodes = {}
            for _ in range(j.replicas):
                n = next((n for n, f in enumerate(pool.free) if f >= j.dpr), None)
                if n is None:
                    raise RuntimeError(f"{NAME}: pool {pool.cluster}/{pool.accelerator} cannot hold its admitted jobs")
                pool.free[n] -= j.dpr
                j.nodes[n] = j.nodes.get(n, 0) + 1
            if j.st.id not in starting and before and j.nodes != before:
                j.st.actions["move"] += 1           # free, as everything here; counted in the summary's moves
                self.recs.at(t).actions["move"] += 1

    # -- state changes --------------------------------------------------------------------------------
    def _start(self, j: _Job, t: float, moved: bool) -> None:
        st = j.st
        j.version += 1
        j.mark = t
        pool = self.pools[j.pool]
        if not moved:
            st.status = "running"
            if st.first_start_s is None:
                st.first_start_s = t
            st.actions["start"] += 1
            self.recs.at(t).actions["start"] += 1
        else:
            st.actions["move"] += 1
            self.recs.at(t).actions["move"] += 1
        st.placed_on[(pool.cluster, pool.accelerator)] = None
        heapq.heappush(self.fin, (t + j.remaining / j.rate, self._tick(), st.id, j.version))
        self._push_demotion(j, t)

    def _preempt(self, j: _Job, t: float) -> None:
        st = j.st
        st.status, st.last_stop_s, st.placement = "pending", t, None
        st.actions["preempt"] += 1
        self.recs.at(t).actions["preempt"] += 1
        j.pool, j.replicas, j.rate, j.nodes = None, 0, 0.0, {}
        j.version += 1

    def _push_demotion(self, j: _Job, t: float) -> None:
        if j.queue < len(self.th) and j.pool is not None:
            devices = j.replicas * j.dpr
            at = t + (self.th[j.queue] - j.attained) / devices
            heapq.heappush(self.dem, (max(at, t), self._tick(), j.st.id, j.version))

    def _requeue(self, j: _Job) -> None:
        q = self._queue_of(j.attained)
        if q != j.queue:
            self.order.pop(bisect_left(self.order, j.key))
            j.queue = q
            # fifo: by submission in every queue; tiresias: a demoted job joins the back of its new queue
            j.key = (q, j.key[1] if self.within == "fifo" else self._tick(), *j.key[2:])
            insort(self.order, j.key)

    def _queue_of(self, attained: float) -> int:
        return sum(1 for x in self.th if attained >= x - EPS)

    def _settle(self, j: _Job, t: float) -> None:
        """Bring `j`'s service, work and waiting up to `t` and account the interval since its mark."""
        dt = t - j.mark
        st = j.st
        if dt > 0:
            if j.pool is not None and st.status == "running":
                devices = j.replicas * j.dpr
                work = min(j.remaining, j.rate * dt)
                j.attained += devices * dt
                j.remaining -= work
                st.attained_device_s = j.attained
                st.run_s += dt
                self.recs.held(st.id, self.pools[j.pool].accelerator, devices, j.rate, j.mark, t)
            elif st.status == "pending":
                st.wait_s += dt
        j.mark = t

    def _release(self, j: _Job) -> None:
        if j.pool is None:
            return
        pool = self.pools[j.pool]
        for n, k in j.nodes.items():
            pool.free[n] += k * j.dpr
        j.nodes = {}

    def settle_all(self, t: float) -> None:
        for jid in self.state.active:
            self._settle(self.jobs[jid], t)

    def _tick(self) -> int:
        self.seq += 1
        return self.seq


def _left_device_s(j: _Job) -> float:
    """The clairvoyant order's key: the device-seconds `j` still needs where it holds the fewest (its trace
    work left, which no scheduler Meridian runs can know)."""
    return min((j.remaining / rate * reps * j.dpr for _, reps, rate in j.options if rate > 0), default=math.inf)


def _pools(fleet: Fleet) -> list[_Pool]:
    """One pool per (cluster, accelerator), nodes in fleet order (down nodes left out)."""
    down = set(fleet.down_nodes)
    out: dict[tuple[str, str], _Pool] = {}
    for c in fleet.clusters:
        for g in c.node_groups:
            sizes = [g.devices for i in range(g.count) if f"{g.prefix}{i}" not in down]
            p = out.setdefault((c.name, g.accelerator), _Pool(c.name, c.region, g.accelerator, [], []))
            p.sizes.extend(sizes)
            p.free.extend(sizes)
    return list(out.values())


def _options(a: Arrival, pools: list[_Pool]) -> list[tuple[int, int, float]]:
    """(pool, replicas, work per second) for each pool that could ever hold the job: its `max` replicas
    (an allowed count) capped at what the pool holds, never below `min`."""
    job = a.job
    out = []
    for k, p in enumerate(pools):
        speed = job.speed.get(p.accelerator)
        if not speed or (job.regions is not None and p.region not in job.regions):
            continue
        cap = min(job.replicas.max, sum(s // job.devices_per_replica for s in p.sizes))
        allowed = job.replicas.allowed
        reps = max((r for r in (allowed or range(job.replicas.min, cap + 1)) if job.replicas.min <= r <= cap),
                   default=0)
        if reps:
            out.append((k, reps, reps * job.devices_per_replica * speed))
    return out


def _mark_exact(pools: list[_Pool], jobs) -> None:
    """A pool fits by device count when every replica size that can go there is a power of two dividing
    every node of the pool (first-fit-decreasing then packs any set whose devices fit)."""
    for k, p in enumerate(pools):
        sizes = {j.dpr for j in jobs if any(o[0] == k for o in j.options)}
        p.exact = all(d & (d - 1) == 0 and all(s % d == 0 for s in p.sizes) for d in sizes)


def _ffd(node_sizes: list[int], items: list[tuple[int, int]]) -> bool:
    """Whether first-fit-decreasing packs `items` ((replicas, devices per replica)) on nodes of `node_sizes`."""
    free = list(node_sizes)
    for reps, d in sorted(items, key=lambda x: -x[1]):
        for _ in range(reps):
            n = next((n for n, f in enumerate(free) if f >= d), None)
            if n is None:
                return False
            free[n] -= d
    return True
