"""Admission control: a bounded number of solves at once, a bounded queue, and no promise the queue
cannot keep.

A request is admitted when a worker is free, or when the queue has room and the work already
ahead of it (estimated from each plan's `time_limit_s` and how much of it plans have really
used lately) would let it start within `max_wait_s`. Otherwise it is refused at once with a
`Retry-After` of about the time the work ahead needs, so a caller never waits on a plan it
would have given up on.
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
    """One admitted plan: its estimated solve time, and whether it holds a worker yet."""

    estimate_s: float
    time_limit_s: float
    started: bool = False
    finished: bool = False


class Admission:
    """Counts of admitted plans and the estimated work they carry. Thread-safe: tickets start and end on
    worker threads while the event loop admits."""

    def __init__(self, workers: int, queue: int, max_wait_s: float):
        self.workers = workers
        self.queue = queue
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self._backlog_s = 0.0           # summed estimates of admitted, unfinished plans
        self._ratio = 0.5               # recent solve_s / time_limit_s (an EWMA)

    def estimate(self, time_limit_s: float) -> float:
        with self._lock:
            return self._estimate(time_limit_s)

    def _estimate(self, time_limit_s: float) -> float:
        return max(0.001, self._ratio * time_limit_s)

    def wait_estimate_s(self) -> float:
        """How long a plan admitted now would wait for a worker."""
        with self._lock:
            return self._wait_s()

    def _wait_s(self) -> float:
        if self.running + self.waiting < self.workers:
            return 0.0
        return self._backlog_s / self.workers

    def admit(self, time_limit_s: float) -> Ticket:
        """A ticket for one plan, or Overloaded."""
        with self._lock:
            est = self._estimate(time_limit_s)
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
            return Ticket(estimate_s=est, time_limit_s=time_limit_s)

    def start(self, ticket: Ticket) -> None:
        """The ticket's plan got a worker."""
        with self._lock:
            if ticket.started or ticket.finished:
                return
            ticket.started = True
            self.waiting -= 1
            self.running += 1

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
            if solve_s is not None and ticket.time_limit_s > 0:
                observed = min(1.5, max(0.001, solve_s / ticket.time_limit_s))
                self._ratio = 0.8 * self._ratio + 0.2 * observed
