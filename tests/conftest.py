"""Fixtures every test folder shares: the bundled replay fixtures and the shared traces beside the project."""

from pathlib import Path

import pytest

from tests.support import checker

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "replay"
SHARED_TRACES = checker.TRACES


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def shared_traces() -> Path:
    if not (SHARED_TRACES / "philly_jobs.csv").exists():
        pytest.skip(f"the shared traces are not at {SHARED_TRACES}")
    return SHARED_TRACES


@pytest.fixture(scope="session")
def ray_cluster():
    """Three Ray nodes for the whole `ray` run (fleet nodes a0, a1, b0, as `executor.ray_check.check_fleet(3)`
    names them; one CPU each); skipped, saying why, where Ray must not start (tests/support/ray_cluster.py)."""
    from tests.support import ray_cluster as rc

    reason = rc.skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = rc.start(["a0", "a1", "b0"])
    yield cluster
    rc.stop(cluster)
