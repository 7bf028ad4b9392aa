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
  best on days 30-37, 1 (per replica) hurts there; the README has the measured trade (issue 11).
- **waiting** (aging, against starvation): `1 + wait / aging_s` where `wait` is the time since the job
  last held devices (since its submission if it never ran), for pending jobs; 1 for running jobs.
- **risk** (SLA): a pending job of a tier with a target whose SLA ratio (`replay.sla`), were it to
  finish right now after `run_s` of work and `wait` of waiting, is already below its tier's target
  gets `risk_boost`; the ratio can only fall further while it waits. Non-clairvoyant: the controller
  never reads a job's duration.

The tier itself is not in the priority: the contract's `tier_weights` multiply it in the objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from executor.loop import LoopState
from replay.sla import DEFAULT_SLA_TARGETS, sla_ratio


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

    def priority(self, state: LoopState, job_id: str) -> float:
        st = state.jobs[job_id]
        hours = st.attained_device_s / 3600.0 / st.arrival.job.devices_per_replica ** self.gang_exponent
        level = sum(1 for t in self.thresholds_device_h if hours >= t)
        p = self.level_factor ** level
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
        return {jid: self.priority(state, jid) for jid in state.active}


class EqualPriorities:
    """Every job at priority 1.0: the planner with no controller, to show the optimizer's own share."""

    def priorities(self, state: LoopState) -> dict[str, float]:
        return {jid: 1.0 for jid in state.active}
