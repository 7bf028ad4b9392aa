"""A one-line progress bar for replays (stderr; redrawn at most a few times a second)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from executor.loop import EpochRecord, LoopState


class ProgressBar:
    """Observer for `executor.loop.run_loop`: measured jobs done out of all, trace day, queue."""

    def __init__(self, measured: set[str], label: str, stream: TextIO | None = None, every_s: float = 0.5):
        self.measured, self.label = measured, label
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.t0 = time.monotonic()
        self._last = 0.0
        self._done = 0

    def __call__(self, rec: EpochRecord, state: LoopState) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        self._done = sum(1 for j in self.measured if (s := state.jobs.get(j)) is not None and s.status in ("done", "rejected"))
        n = max(1, len(self.measured))
        width = 30
        fill = int(width * self._done / n)
        self.stream.write(f"\r[{self.label}] [{'#' * fill}{'.' * (width - fill)}] {self._done}/{n} jobs | "
                          f"day {rec.t_s / 86400:6.2f} | running {rec.running} waiting {rec.pending} | "
                          f"{now - self.t0:6.1f} s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
