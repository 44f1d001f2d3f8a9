"""Fixtures shared by every test: an isolated home, restored environment, databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import reset_settings
from shared.storage import dispose_engine, upgrade_database

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSTGRES_URL = os.environ.get(
    "DIPTYCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Give each test its own DIPTYCH_HOME and restore every environment variable after it."""
    saved = dict(os.environ)
    monkeypatch.setenv("DIPTYCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DIPTYCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("DIPTYCH_BROKER_URL", raising=False)
    reset_settings()
    yield
    dispose_engine()
    os.environ.clear()
    os.environ.update(saved)
    reset_settings()


def find_data_dir() -> Path | None:
    """Return the public data folder: DIPTYCH_DATA_DIR, else ../shared/data beside the checkout."""
    configured = os.environ.get("DIPTYCH_DATA_DIR")
    if configured and Path(configured).is_dir():
        return Path(configured)
    return DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else None


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The public data folder, set as DIPTYCH_DATA_DIR; skips the test when there is none."""
    found = find_data_dir()
    if found is None:
        pytest.skip("public data sets not found: set DIPTYCH_DATA_DIR")
    monkeypatch.setenv("DIPTYCH_DATA_DIR", str(found))
    reset_settings()
    return found


def _postgres_available() -> bool:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A migrated, empty database on SQLite and on PostgreSQL, set as DIPTYCH_DATABASE_URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        if not _postgres_available():
            if os.environ.get("CI"):
                pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required in CI but not reachable")
            pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable")
        url = POSTGRES_URL
        _drop_all(url)
    monkeypatch.setenv("DIPTYCH_DATABASE_URL", url)
    reset_settings()
    upgrade_database(url)
    yield url
    dispose_engine()
    if request.param == "postgresql":
        _drop_all(url)


def _drop_all(url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
        connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()


from tests._celery import (  # noqa: E402, F401
    celery_broker_url,
    celery_redis_reservation,
    celery_redis_url,
    start_worker,
)
from tests._smtp import smtp_server  # noqa: E402, F401
