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
    """Three Ray nodes (fleet nodes n0, n1, n2; one CPU each) for the whole `ray` run; skipped, saying
    why, where Ray must not start (tests/support/ray_cluster.py)."""
    from tests.support import ray_cluster as rc

    reason = rc.skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = rc.start(["n0", "n1", "n2"])
    yield cluster
    rc.stop(cluster)
