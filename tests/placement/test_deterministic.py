"""`policy.deterministic: true`: the same request gives the same plan, whatever the machine's load.

Contract v1: "with policy.deterministic: true the same request must give the same plan". Every
budget of a deterministic plan is work counted from the request (CP-SAT work units, simplex
iterations, rounds), so CPU-burning neighbours that slow the plan down must not change it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from datasets.requests import generate_size
from placement import plan
from tests.support.requests import check, parsed


@contextmanager
def _cpu_burners(count: int) -> Iterator[None]:
    """`count` busy-loop processes competing for the CPUs while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _comparable(resp) -> str:
    """The plan and everything reported about it except the seconds it took."""
    data = resp.model_dump(mode="json", exclude={"solve_s"})
    data["stats"].pop("phases_s", None)
    return json.dumps(data, sort_keys=True)


def test_a_deterministic_medium_plan_is_the_same_under_load():
    data = generate_size("medium", seed=1)
    data["policy"]["deterministic"] = True
    quiet = plan(parsed(data))
    with _cpu_burners(1):
        loaded = plan(parsed(data))
    check(data, quiet)
    assert _comparable(quiet) == _comparable(loaded)
