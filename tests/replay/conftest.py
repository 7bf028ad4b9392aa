from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replay"
SHARED_TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "traces"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def shared_traces() -> Path:
    if not (SHARED_TRACES / "philly_jobs.csv").exists():
        pytest.skip(f"the shared traces are not at {SHARED_TRACES}")
    return SHARED_TRACES
