"""Column generation's remaining rounds, and the integer bound at their prices, beside the search.

Why: at planet size the LP stage stops on time, not on convergence (two or three of the dozen rounds
the LP needs, on a slow machine), so the bound users read as `gap` is the Lagrangian at early duals,
a point or more looser than the LP's; and while the plan is packed, scored and searched, the
machine's second core sits idle. HiGHS releases the GIL while it solves, so the rounds the LP stage
had no time for run in a second thread until the search stops; the integer bound is then taken at
their prices, and the plan's bound is the tightest. The plan never waits on them.
"""

from __future__ import annotations

import os
import threading

from placement.bound import Bound
from placement.colgen import ColumnGeneration


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


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

    @property
    def rounds(self) -> int:
        """The rounds the thread finished (read after `result`)."""
        return int(self.cg.stats["rounds"]) - self.rounds_before
