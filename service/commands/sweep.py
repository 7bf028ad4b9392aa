"""What `meridian whatif` and a multi-run `meridian replay` share: where the runs execute (`--jobs`
local processes, or `--ray ADDRESS`) and the line printed as each run finishes."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

from replay.runners import OnDone, Runner, Task, TaskFailed, local_runner
from service.errors import UsageError


def add_sweep_flags(p, what: str) -> None:
    p.add_argument("--jobs", type=int, default=None,
                   help=f"{what} at once (default: this machine's CPU count, or the Ray cluster's CPUs)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help=f"run {what} as Ray tasks: 'local' starts Ray on this machine for the command, HOST:PORT "
                        "or 'auto' joins a running cluster (needs the ray extra); the outputs are written here")


@contextlib.contextmanager
def sweep_runner(ray_address: str | None, jobs: int | None) -> Iterator[tuple[Runner, int]]:
    """(runner, runs at once) for the command's duration; a Ray runtime started here is stopped after."""
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if ray_address is None:
        workers = jobs or os.cpu_count() or 1
        yield local_runner(workers), workers
        return
    from replay.ray_runner import RayUnavailable, cluster_cpus, init_ray, ray_runner

    try:
        started = init_ray(ray_address, num_cpus=jobs or os.cpu_count() or 1)
    except RayUnavailable as exc:
        raise UsageError(str(exc)) from None
    try:
        yield ray_runner(ray_address), jobs or cluster_cpus()
    finally:
        if started:
            import ray

            ray.shutdown()


def progress_printer(total: int | None) -> OnDone:
    """`[  12.3 s] 2/4 name: done` on stderr as each run finishes (a failure says why); no `/4` when the
    total is not known in advance (the capacity search)."""
    t0 = time.monotonic()
    count = [0]

    def on_done(i: int, task: Task, res) -> None:
        count[0] += 1
        what = f"FAILED ({res.error})" if isinstance(res, TaskFailed) else "done"
        print(f"[{time.monotonic() - t0:7.1f} s] {count[0]}{'' if total is None else f'/{total}'} {task.name}: {what}", file=sys.stderr)

    return on_done
