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
