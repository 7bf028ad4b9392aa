"""The SLA ratio and the default per-tier targets, defined once for the controller and the metrics.

SLA ratio = `duration / max(duration, elapsed - epoch_s - restart_overhead_s)`: the job's time doing
work over its time in the system, with the wait for the first epoch and one start forgiven. 1.0 means
the job was never late; a tier's target is the least ratio its jobs should reach.
"""

from __future__ import annotations

from types import MappingProxyType

# Read-only: callers copy it (`dict(DEFAULT_SLA_TARGETS)`) before changing a target.
DEFAULT_SLA_TARGETS = MappingProxyType({"premium": 0.95, "standard": 0.70})


def sla_ratio(duration_s: float, elapsed_s: float, epoch_s: float, restart_s: float) -> float:
    """The ratio for a job that ran `duration_s` of `elapsed_s` in the system (see the module docstring)."""
    counted = elapsed_s - epoch_s - restart_s
    return 1.0 if counted <= duration_s else duration_s / counted
