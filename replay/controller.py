"""The replay's control plane: each job's `priority` every epoch, from attained service, waiting time
and SLA risk, as an operator's controller would set it before asking the planner.

    priority = clamp(service * waiting * risk, min_priority, max_priority)

- **service** (least attained service, multi-level): `level_factor ** level`, where `level` is the
  number of thresholds in `thresholds_device_h` (default 1, 4, 16, 64, 256 GPU-hours) the job's
  attained service (devices x time held) has passed. Levels, not a continuous curve, so that two
  similar jobs do not swap places every epoch (each swap costs a checkpoint and a restart).
  A gang job (`devices_per_replica` > 1) counts its attained service divided by
  `devices_per_replica ** gang_exponent` (default 0.75: an 8-device job's GPU-hours count as if it
  held 4.8 devices, a 4-device job's as 2.8). Counted in full, an 8-device job passes each level 8
  times sooner than a 1-device job of the same age, so at full plans it is the cheapest victim per
  device, and once preempted it restarts only where a whole node drains again (Philly days 44-51:
  basic 8-GPU jobs, 0.4 % of the jobs, carried 121 s of cpsat's 258 s above the floor). The
  exponent trades them against the small jobs that become the victims instead: 0 (in full) is
  best on days 30-37, 1 (per replica) hurts there; docs/notes/work-conserving-replay.md has the
  measured trade (issue 11).
  With `service="gittins"` the factor is instead the Gittins index of the job's attained service
  (`replay.gittins`: the same GPU-hours, a grid of cells at the levels' thresholds), learned every
  `gittins_refresh_s` from the service of the jobs finished so far and the attained service of the
  active ones (never a job's duration), normalised to 1.0 at the highest index and rounded to a power
  of `gittins_step`; the levels until `gittins_min_samples` jobs have finished. `gittins-class`
  learns one distribution per `devices_per_replica` class (1, 2-4, 8+) with `gittins_class_min_samples`
  finished jobs. Not the default: on Philly days 20-27 and 30-37 it was worse than the levels
  (docs/notes/work-conserving-replay.md).
  `service="clairvoyant"` is a reference, not a controller: the factor is `1 / (h + 0.1)` where `h`
  is the GPU-hours of trace work the job has left (scaled as above), shortest remaining work first.
  It measures what knowing every job's duration would buy the loop as it is, pauses and all (on days
  20-27 and 30-37 less than the levels lose to the free, clairvoyant `las2d-ideal --ideal-order srpt`).
- **waiting** (aging, against starvation): `1 + wait / aging_s` where `wait` is the time since the job
  last held devices (since its submission if it never ran), for pending jobs; 1 for running jobs.
- **risk** (SLA): a pending job of a tier with a target whose SLA ratio (`replay.sla`), were it to
  finish right now after `run_s` of work and `wait` of waiting, is already below its tier's target
  gets `risk_boost`; the ratio can only fall further while it waits. Non-clairvoyant: the controller
  never reads a job's duration (but for the `clairvoyant` reference above).

The tier itself is not in the priority: the contract's `tier_weights` multiply it in the objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from executor.loop import JobState, LoopState
from replay.gittins import DEFAULT_GRID_H, OnlineGittins, quantise
from replay.sla import DEFAULT_SLA_TARGETS, sla_ratio

SERVICES = ("levels", "gittins", "gittins-class", "clairvoyant")


@dataclass
class SlaController:
    thresholds_device_h: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0, 256.0)
    gang_exponent: float = 0.75
    level_factor: float = 0.25
    aging_s: float = 6 * 3600.0
    risk_boost: float = 4.0
    targets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SLA_TARGETS))
    restart_overhead_s: float = 30.0
    min_priority: float = 1e-3
    max_priority: float = 100.0
    service: str = "levels"              # levels | gittins | gittins-class (per devices_per_replica class) |
                                         # clairvoyant (a reference: reads the trace's work, never a default)
    gittins_grid_h: tuple[float, ...] = DEFAULT_GRID_H
    clairvoyant_floor_h: float = 0.1     # clairvoyant: the factor is 1 / (GPU-hours left + this)
    gittins_refresh_s: float = 3600.0
    gittins_min_samples: int = 200
    gittins_exponent: float = 1.0
    gittins_step: float = 2.0
    gittins_censored: bool = True
    gittins_class_min_samples: int = 200
    _gittins: OnlineGittins | None = field(default=None, init=False, repr=False)
    _seen: dict[str, None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"service: expected one of {', '.join(SERVICES)}, got {self.service!r}")
        if self.service.startswith("gittins"):
            self._gittins = OnlineGittins(self.gittins_grid_h, self.gittins_refresh_s, self.gittins_min_samples,
                                          per_class=self.service == "gittins-class",
                                          censored=self.gittins_censored,
                                          class_min_samples=self.gittins_class_min_samples)

    def hours(self, st: JobState) -> float:
        """Attained service in GPU-hours, a gang job's divided by `devices_per_replica ** gang_exponent`."""
        return st.attained_device_s / 3600.0 / st.arrival.job.devices_per_replica ** self.gang_exponent

    def hours_left(self, st: JobState) -> float:
        """The trace work the job has left, in GPU-hours scaled as `hours` scales the service attained: its
        work less the service attained so far (a run's pause counts as work, so it reads up to a pause
        low). Only the clairvoyant reference reads it; no control plane knows a job's work."""
        left = max(0.0, st.arrival.work - st.attained_device_s)
        return left / 3600.0 / st.arrival.job.devices_per_replica ** self.gang_exponent

    def service_factor(self, st: JobState) -> float:
        if self.service == "clairvoyant":
            return 1.0 / (self.hours_left(st) + self.clairvoyant_floor_h)
        hours = self.hours(st)
        if self._gittins is not None:
            g = self._gittins.index(job_class(st), hours)
            if g is not None:
                return quantise(max(g, self.min_priority) ** self.gittins_exponent, self.gittins_step)
        level = sum(1 for t in self.thresholds_device_h if hours >= t)
        return self.level_factor ** level

    def priority(self, state: LoopState, job_id: str) -> float:
        st = state.jobs[job_id]
        p = self.service_factor(st)
        if st.status == "pending":
            since = st.last_stop_s if st.last_stop_s is not None else st.arrival.submit_s
            p *= 1.0 + max(0.0, state.now_s - since) / self.aging_s
            target = self.targets.get(st.arrival.job.tier)
            if target is not None:
                ratio = sla_ratio(st.run_s, st.run_s + st.wait_s, state.epoch_s, self.restart_overhead_s)
                if ratio < target:
                    p *= self.risk_boost
        return min(self.max_priority, max(self.min_priority, p))

    def priorities(self, state: LoopState) -> dict[str, float]:
        if self._gittins is not None:
            self._observe(state)
        return {jid: self.priority(state, jid) for jid in state.active}

    def _observe(self, state: LoopState) -> None:
        """Learn from the jobs that finished since the last call (active then, done now: their attained
        service is their total) and, when the table is due, relearn it."""
        g = self._gittins
        for jid in self._seen:
            if jid not in state.active:
                st = state.jobs[jid]
                if st.status == "done":
                    g.add_finished(job_class(st), self.hours(st))
        self._seen = dict.fromkeys(state.active)
        if g.due(state.now_s):
            g.learn(state.now_s, ((job_class(st), self.hours(st)) for st in map(state.jobs.__getitem__, state.active)))


def job_class(st: JobState) -> str:
    """The class whose service distribution a job is judged by: its devices per replica, bucketed
    (1, 2-4, 8 and more), since gang jobs' service runs in larger steps."""
    d = st.arrival.job.devices_per_replica
    return "1" if d <= 1 else "2-4" if d <= 4 else "8+"


class EqualPriorities:
    """Every job at priority 1.0: the planner with no controller, to show the optimizer's own share."""

    def priorities(self, state: LoopState) -> dict[str, float]:
        return {jid: 1.0 for jid in state.active}
