"""Fixtures for the service tests: an app per test on SQLite, and on PostgreSQL where one is configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import Settings, create_app
from tests.support.service import PG_SKIP_REASON, json_client, pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose plan log is a fresh SQLite file, or the test PostgreSQL database."""
    if request.param == "postgresql":
        url = pg_url()
        if url is None:
            pytest.skip(PG_SKIP_REASON)
        return Settings(db_url=url, workers=2, queue=8)
    return Settings(db_path=str(tmp_path / "plans.sqlite"), workers=2, queue=8)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(db_path=str(tmp_path / "plans.sqlite"), workers=2, queue=8)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with json_client(create_app(settings)) as c:
        yield c


@pytest.fixture
def sqlite_client(sqlite_settings: Settings) -> Iterator[TestClient]:
    with json_client(create_app(sqlite_settings)) as c:
        yield c
