"""Column generation's remaining rounds, in a second thread beside the packing and the search.

Why: at planet size the LP stage stops on time, not on convergence (two or three of the dozen rounds
the LP needs, on a slow machine), so the bound users read as `gap` is the Lagrangian at early duals,
a point or more looser than the LP's; and while the plan is packed, scored and searched, the
machine's second core sits idle. HiGHS releases the GIL while it solves, so the rounds the LP stage
had no time for run in a second thread until the search stops; the integer bound is then taken at
their prices, and the plan's bound is the tightest. The plan never waits on them.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref

import numpy as np

from placement.bound import Bound
from placement.colgen import ColumnGeneration

POLL_S = 0.02   # how often a caller waiting for a round looks


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


_LIVE: weakref.WeakSet = weakref.WeakSet()   # every BoundBeside whose thread may still be in HiGHS


@atexit.register
def _join_live() -> None:
    """Wait for the rounds still running (each stops by its own deadline, within its plan's limit): a
    process that exits while a thread is inside HiGHS aborts ("terminate called without an active
    exception", exit code 134), as a plan that returned early after starting one would leave it."""
    for beside in list(_LIVE):
        beside._thread.join()


class BoundBeside:
    """More rounds of `cg` until `until` (a perf_counter reading), in a daemon thread started at once;
    `result()` joins it. Only the rounds run there: the integer bound at their prices is Python loops,
    which beside the main thread's packing took five times as long and slowed the packing down."""

    def __init__(self, cg: ColumnGeneration, until: float):
        self.cg, self.until = cg, until
        self.rounds_before = int(cg.stats["rounds"])
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="meridian-lp-beside", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def _work(self) -> None:
        try:
            self.cg.run(self.until)
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller's thread, raised there by `result`
            self._error = exc

    def result(self) -> Bound | None:
        """The LP's bound after the extra rounds (`ColumnGeneration.bound`); waits for the thread."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.cg.bound()

    def fresh_primal(self, after: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None:
        """(per option how much it is chosen, its replicas, pool prices, quota prices, budget price) of the
        newest round the thread finished, if that is past round `after`; None otherwise. Does not wait:
        the thread replaces its last round whole, so what is read is one round's."""
        rounds = int(self.cg.stats["rounds"])   # first: `last` is at least that round (colgen sets it before)
        last = self.cg.last
        if last is None or rounds <= after:
            return None
        return last[1], last[2], last[3], last[4], last[5]

    def await_round(self, after: int, until: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None:
        """`fresh_primal(after)`, waiting for it until `until` (a perf_counter reading) while the thread runs."""
        while True:
            fresh = self.fresh_primal(after)
            if fresh is not None or not self._thread.is_alive() or time.perf_counter() >= until:
                return fresh
            time.sleep(min(POLL_S, max(0.0, until - time.perf_counter())))

    @property
    def rounds(self) -> int:
        """The rounds the thread finished (read after `result`)."""
        return int(self.cg.stats["rounds"]) - self.rounds_before
