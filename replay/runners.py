"""Where a sweep's runs execute: a local process pool or a Ray cluster, behind one shape.

A sweep (what-if scenarios, the capacity search's candidates, several schedulers in one `meridian
replay`) is a list of `Task`s: a picklable function, its arguments and a name. A runner executes them
and returns one entry per task, in task order: the function's result, or a `TaskFailed` naming the
task and the error, so one failed run never loses the others. Tasks return results; the caller (the
driver) writes every output file, so a run on a remote machine leaves nothing behind there.

`on_done(index, task, result_or_failure)` is called in the driver as each run finishes (in finishing
order): the progress a sweep shows.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

# Fresh worker processes (not forks): a fork of a process that has run the solver's threads is not safe.
SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Task:
    """One run of a sweep: `fn(*args)` in some worker, reported as `name`."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()


@dataclass(frozen=True)
class TaskFailed:
    """A run that raised: which one, and the error's last line (the traceback for the log)."""

    name: str
    error: str
    detail: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"{self.name}: {self.error}"


OnDone = Callable[[int, Task, Any], None]
Runner = Callable[[Sequence[Task], OnDone | None], list]


def failed(results: Sequence) -> list[TaskFailed]:
    return [r for r in results if isinstance(r, TaskFailed)]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1]}" if text else type(exc).__name__


def run_inline(tasks: Sequence[Task], on_done: OnDone | None = None) -> list:
    """In this process, one after another (one worker, or a single run)."""
    out = []
    for i, t in enumerate(tasks):
        try:
            r = t.fn(*t.args)
        except Exception as exc:  # noqa: BLE001 (reported by name; the other runs go on)
            r = TaskFailed(t.name, _describe(exc), traceback.format_exc())
        out.append(r)
        if on_done:
            on_done(i, t, r)
    return out


def local_runner(workers: int) -> Runner:
    """Up to `workers` runs at once, each in its own spawned process (inline for one worker or one task)."""

    def run(tasks: Sequence[Task], on_done: OnDone | None = None) -> list:
        if workers <= 1 or len(tasks) <= 1:
            return run_inline(tasks, on_done)
        out: list = [None] * len(tasks)
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=SPAWN) as pool:
            futs = {pool.submit(t.fn, *t.args): i for i, t in enumerate(tasks)}
            pending = set(futs)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=futs.get):
                    i = futs[f]
                    try:
                        out[i] = f.result()
                    except Exception as exc:  # noqa: BLE001
                        out[i] = TaskFailed(tasks[i].name, _describe(exc),
                                            "".join(traceback.format_exception(exc)))
                    if on_done:
                        on_done(i, tasks[i], out[i])
        return out

    return run
