"""The one interface every executor backend implements, and what the epoch loop trades with it.

The epoch loop (state -> request -> plan -> apply -> advance -> new state) is written once
(`executor.loop`) and drives either backend: `executor.sim` (replay, what-if: advances work at
the contract's rates and charges exactly the contract's pauses) or `executor.torch_backend`
(real PyTorch workers through checkpoint/resume).

A backend implements `apply`, `run_epoch`, `placements` (and `close` when it holds resources);
`next_finish_s` is optional. Between epochs the loop may `apply` a backfill plan (`policy.mode:
"backfill"`: running jobs stay exactly where they are, only waiting jobs start), at any time inside
an epoch, and `run_epoch` is then called for the pieces of the epoch around it; pauses are charged
as the contract charges them, `min(pause, epoch_s)` of the request's `epoch_s`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from models.request import Placement, PlanRequest
from models.response import Action, PlanResponse


@dataclass
class AppliedAction:
    """One plan action as it was carried out: the contract's modelled pause beside what it took."""

    job: str
    kind: str
    modelled_pause_s: float
    measured_s: dict[str, float] = field(default_factory=dict)   # stop, save, transfer, launch, rendezvous, load
    checkpoint_bytes: int | None = None


@dataclass
class EpochResult:
    """What happened while the executor ran one epoch."""

    finished: list[str] = field(default_factory=list)          # job ids that completed their work
    progress: dict[str, float] = field(default_factory=dict)   # job id -> work done (device-seconds at speed 1) so far
    failed_nodes: list[str] = field(default_factory=list)      # nodes that went down during the epoch


class PlanApplyError(ValueError):
    """A plan an executor refuses; nothing of it was applied (every backend raises this one class)."""


class Executor(ABC):
    """A backend that makes a plan's placements real and runs them for an epoch."""

    @abstractmethod
    def apply(self, request: PlanRequest, plan: PlanResponse, now_s: float) -> list[AppliedAction]:
        """Carry out `plan.actions` (start, preempt, resize, move, migrate) at time `now_s`."""

    @abstractmethod
    def run_epoch(self, now_s: float, epoch_s: float) -> EpochResult:
        """Run every placed job from `now_s` for `epoch_s` seconds (or until it finishes).

        `epoch_s` is the length of this step, not always a whole epoch: when the loop acts on events
        (`LoopConfig.backfill_window_s`) it runs an epoch as several steps with a backfill plan
        (`apply`) between them. A pause (start, resize, ...) longer than a step carries on into the next."""

    def next_finish_s(self, now_s: float) -> float | None:
        """When the next placed job will finish, if the backend can tell (the simulator knows each
        job's work and rate); None when it cannot (real training): the loop then polls it every
        backfill window. Only the event-driven loop asks; the default cannot tell."""
        return None

    @abstractmethod
    def placements(self) -> dict[str, Placement]:
        """Where each running job is now: the next request's `current`."""

    def close(self) -> None:
        """Release workers and files; the default has nothing to release."""


def action_pause_s(request: PlanRequest, action: Action) -> float:
    """The pause (seconds) contract v1 charges for `action`; the scorer's arithmetic, reused."""
    from placement.score import pause_for_action

    return pause_for_action(request, action)
