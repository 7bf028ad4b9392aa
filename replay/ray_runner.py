"""The sweep runner on Ray: each `Task` a Ray task (one CPU), results in task order, failures by name.

`ray_runner("local")` starts a Ray runtime on this machine for the sweep and stops it afterwards; an
address (`HOST:PORT`, or `auto`) joins a running cluster; with Ray already initialised in this process
(a test's `ray.cluster_utils.Cluster`) the runner uses that. Ray is imported here only, on use: the
planner, the service and the local runner never need it (`pip install -e '.[ray]'`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from replay.runners import OnDone, Runner, Task, TaskFailed

OBJECT_STORE_BYTES = 80 * 1024 * 1024     # results are summaries and rows: a small store is plenty


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster could not be reached (one line saying which)."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: .venv/bin/pip install -e '.[ray]'") from None
    return ray


def init_ray(address: str, num_cpus: int | None = None) -> bool:
    """Connect to (or, for "local", start) Ray unless this process already is; True when we started it."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address not in ("local", "auto"):
        probe_address(address)
    try:
        if address == "local":
            # A runtime for this machine alone: on loopback, not advertised on the machine's network.
            ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                     log_to_driver=False, logging_level="warning", _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"--ray {address}: cannot connect: {str(exc).splitlines()[0]}") from None
    return True


CONNECT_TIMEOUT_S = 5.0


def probe_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise RayUnavailable unless something listens at `address` (`HOST:PORT` or `ray://HOST:PORT`):
    `ray.init` retries an unreachable cluster for minutes, so a wrong address is one line in seconds. An
    address without a port is left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    host = host.strip("[]")          # [::1]:6379
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError, OverflowError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise RayUnavailable(f"--ray {address}: cannot connect to Ray at {host}:{port}: {why}") from None


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1): how many runs go at once."""
    ray = import_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _call(fn, args):
    return fn(*args)


def ray_runner(address: str, num_cpus: int | None = None, timeout_s: float | None = None) -> Runner:
    """A `Runner` executing tasks on Ray (see the module docstring); `num_cpus` sizes a "local" runtime."""

    def run(tasks: Sequence[Task], on_done: OnDone | None = None) -> list:
        ray = import_ray()
        started = init_ray(address, num_cpus)
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(_call)
            refs = {remote.options(name=t.name).remote(t.fn, t.args): i for i, t in enumerate(tasks)}
            out: list = [None] * len(tasks)
            pending = list(refs)
            end = None if timeout_s is None else time.monotonic() + timeout_s
            while pending:
                left = None if end is None else max(0.0, end - time.monotonic())
                done, pending = ray.wait(pending, num_returns=1, timeout=left)
                if not done:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                        i = refs[ref]
                        out[i] = TaskFailed(tasks[i].name, f"not finished within {timeout_s:g} s")
                        if on_done:
                            on_done(i, tasks[i], out[i])
                    break
                for ref in done:
                    i = refs[ref]
                    try:
                        out[i] = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                        text = str(cause).strip().splitlines()
                        out[i] = TaskFailed(tasks[i].name, f"{type(cause).__name__}: {text[-1] if text else ''}",
                                            str(exc))
                    except ray.exceptions.RayError as exc:    # worker or node died, task cancelled
                        out[i] = TaskFailed(tasks[i].name, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    if on_done:
                        on_done(i, tasks[i], out[i])
            return out
        finally:
            if started:
                ray.shutdown()

    return run


def spec_runner(address: str, on_done: OnDone | None = None, timeout_s: float | None = None):
    """`replay.runner`'s seam on Ray: every spec a Ray task of `replay.runner.replay_spec`, which returns
    the run's rows; this process writes each folder as its run finishes (`replay.runner.run_specs`), so
    `--out` is only ever written on the driver's machine. Every spec runs; the failed ones are then
    raised together as one `RunError` naming each (the scenario, the replication and where)."""
    from replay.runner import run_specs

    tasks_of = ray_runner(address, timeout_s=timeout_s)

    def run(specs: Sequence) -> list[dict]:
        return run_specs(specs, tasks_of, on_done)

    return run
