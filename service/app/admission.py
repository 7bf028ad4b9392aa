"""Admission control: a bounded number of solves at once, a bounded queue, and no promise the queue
cannot keep.

A request is admitted when a worker is free, or when the queue has room and the work already
ahead of it (estimated from each plan's budget and how much of its budget plans have really
used lately) would let it start within `max_wait_s`. Otherwise it is refused at once with a
`Retry-After` of about the time the work ahead needs, so a caller never waits on a plan it
would have given up on.

Under load, a plan's budget may be less than its `time_limit_s` (the contract's time limit is a
ceiling, not a promise to spend it): when a plan starts, it gets at most its fair share of the
time in which the queue behind it must drain, `workers * max_wait_s / (queued + workers)`
(divided by how much plans have lately overrun their budgets), and never less than
`min_budget_s`. Deterministic plans always get their full budget, since a cut
would change their answer. The cut raises throughput exactly when the queue is long, instead of
refusing callers; the response's `X-Meridian-Time-Budget-S` header and the plan log say so.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


class Overloaded(Exception):
    """The request was not admitted; `retry_after_s` is when trying again is likely to succeed."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class Ticket:
    """One admitted plan: its estimated solve time, its budget once it starts, and its state."""

    estimate_s: float
    time_limit_s: float
    deterministic: bool = False
    budget_s: float = 0.0
    started: bool = False
    finished: bool = False


class Admission:
    """Counts of admitted plans and the estimated work they carry. Thread-safe: tickets start and end on
    worker threads while the event loop admits."""

    def __init__(self, workers: int, queue: int, max_wait_s: float, min_budget_s: float | None = None):
        self.workers = workers
        self.queue = queue
        self.max_wait_s = max_wait_s
        self.min_budget_s = min_budget_s      # None: never cut a budget
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.budget_cuts = 0
        self._backlog_s = 0.0           # summed estimates of admitted, unfinished plans
        self._ratio = 0.5               # recent solve_s / budget_s (an EWMA)

    def _budget(self, time_limit_s: float, deterministic: bool, queued: int) -> float:
        if deterministic or self.min_budget_s is None or time_limit_s <= self.min_budget_s:
            return time_limit_s
        # plans lately overran their budgets by `_ratio` (parsing, bounds, packing); share the time they really take
        fair = self.workers * self.max_wait_s / ((queued + self.workers) * max(1.0, self._ratio))
        return min(time_limit_s, max(self.min_budget_s, fair))

    def budget(self, time_limit_s: float, deterministic: bool = False, queued: int | None = None) -> float:
        """The budget a plan starting now gets, with `queued` plans (default: those waiting now) behind it."""
        with self._lock:
            return self._budget(time_limit_s, deterministic, self.waiting if queued is None else queued)

    def estimate(self, time_limit_s: float, deterministic: bool = False) -> float:
        with self._lock:
            return self._estimate(time_limit_s, deterministic)

    def _estimate(self, time_limit_s: float, deterministic: bool) -> float:
        return max(0.001, self._ratio * self._budget(time_limit_s, deterministic, self.waiting + 1))

    def _wait_s(self) -> float:
        if self.running + self.waiting < self.workers:
            return 0.0
        return self._backlog_s / self.workers

    def admit(self, time_limit_s: float, deterministic: bool = False) -> Ticket:
        """A ticket for one plan, or Overloaded."""
        with self._lock:
            est = self._estimate(time_limit_s, deterministic)
            in_system = self.running + self.waiting
            if in_system >= self.workers:
                wait = self._wait_s()
                retry = max(1, math.ceil(wait))
                if in_system >= self.workers + self.queue:
                    raise Overloaded(f"all {self.workers} solver(s) are busy and the queue of {self.queue} is full",
                                     retry)
                if wait + est > self.max_wait_s:
                    raise Overloaded(f"the plans ahead need about {wait:.1f} s of solver time; with this one's "
                                     f"{est:.1f} s that is past this server's {self.max_wait_s:g} s wait cap", retry)
            self.waiting += 1
            self._backlog_s += est
            return Ticket(estimate_s=est, time_limit_s=time_limit_s, deterministic=deterministic)

    def start(self, ticket: Ticket) -> float:
        """The ticket's plan got a worker; returns its budget (seconds), 0 if it was abandoned."""
        with self._lock:
            if ticket.started or ticket.finished:
                return 0.0
            ticket.started = True
            self.waiting -= 1
            self.running += 1
            ticket.budget_s = self._budget(ticket.time_limit_s, ticket.deterministic, self.waiting)
            if ticket.budget_s < ticket.time_limit_s:
                self.budget_cuts += 1
            return ticket.budget_s

    def finish(self, ticket: Ticket, solve_s: float | None) -> None:
        """The ticket's plan is done (solve_s given) or abandoned before it ran (None). Idempotent."""
        with self._lock:
            if ticket.finished:
                return
            ticket.finished = True
            if ticket.started:
                self.running -= 1
            else:
                self.waiting -= 1
            self._backlog_s = max(0.0, self._backlog_s - ticket.estimate_s)
            budget = ticket.budget_s or ticket.time_limit_s
            if solve_s is not None and budget > 0:
                observed = min(1.5, max(0.001, solve_s / budget))
                self._ratio = 0.8 * self._ratio + 0.2 * observed
