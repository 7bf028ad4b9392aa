"""One replay: a trace window, a fleet and a scheduler in; the loop's final state and its epoch records out.

Window (`--start-day D --days N --warmup-days W`): the jobs submitted in `[D, D+N)` days are measured;
those of `[D-W, D)` are replayed first but not measured; nothing submitted at or after `D+N` arrives.
The replay runs until every measured job has finished (or `max_days` past `D+N`, a safety stop whose
unfinished jobs the summary counts). Without a start day the whole trace is measured, no warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datasets.attributes import JobSpec
from datasets.fleets import fleet_accelerators
from datasets.sharing import allowed_speeds
from executor.loop import Arrival, EpochRecord, LoopConfig, LoopState, run_loop
from executor.schedulers import make_scheduler
from executor.schedulers.cpsat import event_options
from executor.sim import SimExecutor
from models import Fleet, Job, Policy, Quota, Replicas
from replay.controller import EqualPriorities, SlaController
from replay.options import DEFAULTS
from replay.pools import PoolLedger

DAY_S = 86400.0


@dataclass(frozen=True)
class Window:
    start_day: float | None = DEFAULTS.start_day
    days: float | None = DEFAULTS.days
    warmup_days: float = DEFAULTS.warmup_days

    def bounds_s(self, specs: Sequence[JobSpec]) -> tuple[float, float, float]:
        """(replay from, measure from, measure until) in trace seconds."""
        if self.start_day is None:
            first = min((s.submit_s for s in specs), default=0.0)
            end = math.inf if self.days is None else first + self.days * DAY_S
            return first, first, end
        start = self.start_day * DAY_S
        end = math.inf if self.days is None else start + self.days * DAY_S
        return max(0.0, start - self.warmup_days * DAY_S), start, end

    def stop_s(self, specs: Sequence[JobSpec], max_days: float) -> float:
        """The replay's hard stop in trace seconds: the window's end (its last arrival when it has none)
        plus `max_days`. Nothing happens at or after it, so an outage starting there is refused
        (`replay.outages.parse_outage`); the harness, the ideal reference and the checks all stop here."""
        lo, _, until = self.bounds_s(specs)
        end = until if math.isfinite(until) else max((s.submit_s for s in specs if lo <= s.submit_s), default=0.0)
        return end + max_days * DAY_S

    def empty_reason(self, specs: Sequence[JobSpec]) -> str | None:
        """Why no job of `specs` would be measured in this window, or None: a replay of it would report
        "0/0 jobs done", which is a mistyped day, never a question anyone means to ask."""
        if not specs:
            return None
        _, start, end = self.bounds_s(specs)
        if any(start <= s.submit_s < end for s in specs):
            return None
        first = min(s.submit_s for s in specs) / DAY_S
        last = max(s.submit_s for s in specs) / DAY_S
        until = "the trace's end" if math.isinf(end) else f"day {end / DAY_S:g}"
        return (f"no job is submitted from day {start / DAY_S:g} to {until} (the trace's jobs arrive on days "
                f"{first:.2f} to {last:.2f})")


@dataclass
class ReplaySetup:
    """The library's replay settings; the user-facing ones take their defaults (and meaning) from
    `replay.options.ReplayOptions`."""

    scheduler: str = DEFAULTS.scheduler   # cpsat | fifo | las (the CLI's --policy, the what-if's policy:)
    epoch_s: float = DEFAULTS.epoch_s
    seed: int = DEFAULTS.seed
    time_limit_s: float = DEFAULTS.time_limit_s
    equal_priorities: bool = DEFAULTS.equal_priorities
    service: str = DEFAULTS.service        # cpsat's controller: levels | gittins | gittins-class (replay.controller)
    controller_options: dict[str, Any] = field(default_factory=dict)   # more SlaController fields (tuning)
    replan_every: int = DEFAULTS.replan_every
    fast_path: bool = True                # cpsat: skip the optimizer where the optimum is known (fastpath.py)
    max_days: float = DEFAULTS.max_days
    # between epochs, a backfill plan this long after the first event of a batch; None: the epoch grid alone
    backfill_window_s: float | None = DEFAULTS.backfill_window_s if DEFAULTS.backfill else None
    # with a window: a batch whose waiting jobs all fit closes this soon after its first event (executor.loop)
    backfill_fit_window_s: float | None = DEFAULTS.backfill_fit_window_s
    contract_policy: Policy | None = None  # the contract's Policy the scheduler plans under (default Policy())
    quotas: Sequence[Quota] = ()
    outages: Callable[[float], set[str]] | None = None
    sla_targets: dict[str, float] = field(default_factory=lambda: dict(DEFAULTS.sla_targets))
    # scheduler "las2d-ideal" (replay.ideal_las, a reference, not a planner): its queues' thresholds in
    # attained GPU-seconds (default one at a GPU-hour: Tiresias's two queues, as the las baseline)
    ideal_thresholds_device_s: tuple[float, ...] = (3600.0,)
    # ... and its order within a queue: "tiresias" (Tiresias's simulator: waiting jobs move behind the
    # running ones after every round) or "fifo" (by submission, as the las baseline)
    ideal_order: str = "tiresias"


@dataclass
class ReplayRun:
    state: LoopState
    records: list[EpochRecord]
    measured: set[str]
    measure_from_s: float
    measure_until_s: float
    setup: ReplaySetup
    executor: SimExecutor
    specs: dict[str, JobSpec]
    scheduler: object = None
    fleet: Fleet | None = None


def job_template(spec: JobSpec, accelerators: Sequence[str]) -> Job:
    """The contract job for a spec: explicit speeds where the spec has them, else the types the sharing
    rules (`datasets/sharing.py`) allow it among the fleet's `accelerators`, at 1.0.

    A job's logical world size is its `max` replicas (Singularity's fixed world size, time-sliced on
    fewer devices), so its ranks split evenly only over counts that divide it: `replicas.allowed`
    (contract v1.1) lists those within `[min, max]`, and a granted count never runs on fewer devices
    than it holds. It is left unset where every count in the range divides (a rigid job, 1..2)."""
    speed = spec.speed if spec.speed is not None else allowed_speeds(spec.gpu_type, spec.gpu_share, accelerators)
    return Job(id=spec.id, tenant=spec.tenant, tier=spec.tier, priority=1.0,
               replicas=world_size_replicas(spec.min_replicas, spec.max_replicas),
               devices_per_replica=spec.devices_per_replica, speed=dict(speed), data_region=spec.data_region,
               checkpoint_gb=spec.checkpoint_gb)


def _divisors(n: int) -> list[int]:
    """The divisors of `n` in increasing order, in O(sqrt n) steps (a trace job may ask for 2**20 GPUs)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def world_size_replicas(lo: int, world_size: int) -> Replicas:
    """`[lo, world_size]` replicas, granted only as divisors of `world_size`."""
    counts = [r for r in _divisors(world_size) if r >= lo]
    return Replicas(min=lo, max=world_size,
                    allowed=counts if len(counts) < world_size - lo + 1 else None)


def run_replay(specs: Sequence[JobSpec], fleet: Fleet, setup: ReplaySetup, window: Window = Window(),
               observers: Sequence[Callable[[EpochRecord, LoopState], None]] = ()) -> ReplayRun:
    """Replay the window's jobs on `fleet` under `setup.scheduler`; deterministic for a seed. Inputs that
    cannot run together raise ReplayInputError before the first epoch (`replay.checks`). Scheduler
    `las2d-ideal` is no planner but the ideal reference of `replay.ideal_las` (same window, same jobs)."""
    from replay.checks import check_replay_inputs

    if setup.scheduler == "las2d-ideal":      # the ideal reference: event-driven, outside the contract
        from replay.ideal_las import run_ideal_las

        return run_ideal_las(specs, fleet, setup, window)
    check_replay_inputs(specs, fleet, setup, window)
    lo, m_from, m_until = window.bounds_s(specs)
    chosen = [s for s in specs if lo <= s.submit_s < m_until]
    measured = {s.id for s in chosen if s.submit_s >= m_from}
    accs = fleet_accelerators(fleet)
    arrivals = [Arrival(s.submit_s, job_template(s, accs), s.work) for s in chosen]
    executor = PoolLedger({s.id: s.work for s in chosen})
    base = setup.contract_policy or Policy()
    policy = base.model_copy(update={"deterministic": True, "time_limit_s": setup.time_limit_s})
    cpsat = setup.scheduler == "cpsat"
    events = setup.backfill_window_s is not None
    # with backfill on, the baselines act as their event-driven originals do (fifo: EASY backfilling
    # behind a reserved head; las: a boundary preempts only for jobs no idle device could hold) and
    # cpsat holds nodes for the gang job its plans pass over, or at a full plan starts it at once
    # where preempting the occupants pays (executor/schedulers/reservation.py, the live loop's rule
    # too); without it, exactly the loop before backfill
    opts = {"replan_every": setup.replan_every, "fast_path": setup.fast_path, **event_options(events)} if cpsat else \
        {"easy": events} if setup.scheduler == "fifo" else {"idle_first": events}
    scheduler = make_scheduler(setup.scheduler, **opts)
    controller = None
    if cpsat:
        controller = EqualPriorities() if setup.equal_priorities else SlaController(
            targets=dict(setup.sla_targets), restart_overhead_s=policy.restart_overhead_s, service=setup.service,
            **setup.controller_options)
    records: list[EpochRecord] = []
    # the measured jobs in arrival order, and how many of the first ones are finished (done or
    # rejected, for good): `until` checks the first unfinished one, not every measured job each epoch
    order = [s.id for s in chosen if s.id in measured]
    first_open = 0

    def collect(rec: EpochRecord, st: LoopState) -> None:
        records.append(rec)

    def until(st: LoopState) -> bool:
        nonlocal first_open
        while first_open < len(order):
            job = st.jobs.get(order[first_open])
            if job is None or job.status not in ("done", "rejected"):
                return False
            first_open += 1
        return True

    config = LoopConfig(fleet=fleet, epoch_s=setup.epoch_s, policy=policy, quotas=list(setup.quotas),
                        start_s=math.floor(lo / setup.epoch_s) * setup.epoch_s if chosen else 0.0,
                        outages=setup.outages, until=until, max_s=window.stop_s(specs, setup.max_days),
                        backfill_window_s=setup.backfill_window_s, backfill_fit_window_s=setup.backfill_fit_window_s)
    state = run_loop(executor, arrivals, scheduler, config, controller, [collect, *observers])
    return ReplayRun(state, records, measured, m_from, m_until, setup, executor, {s.id: s for s in chosen}, scheduler,
                     fleet)
