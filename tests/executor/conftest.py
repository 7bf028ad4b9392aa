"""Fixtures for the executor tests (helpers live in executor_helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_leftover_agents():
    """Agents of stopped worker groups exit in the background; none outlives its test."""
    yield
    from executor.train.launch import drain

    drain()
