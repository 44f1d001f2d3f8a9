"""One engine per process, safe to use after `fork` (Celery prefork workers).

A pooled connection must never be shared by a parent and a child process:
both would talk over one socket. After a fork the child drops the inherited
pool without closing the parent's connections (`dispose(close=False)`, as the
SQLAlchemy pooling guide recommends) and opens its own.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import get_settings

__all__ = ["dispose_engine", "get_engine", "get_sessionmaker", "session_scope"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}
_owner_pid = os.getpid()


def _forget_inherited_pools() -> None:
    global _owner_pid
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()
    _sessionmakers.clear()
    _owner_pid = os.getpid()


os.register_at_fork(after_in_child=_forget_inherited_pools)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets readers work while a writer commits: the console reads while workers write.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _build_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    logger.debug("engine created backend=%s", parsed.get_backend_name())
    return engine


def get_engine(url: str | None = None) -> Engine:
    """Return this process's engine for `url` (default: the configured database).

    Args:
        url: A SQLAlchemy URL; ``None`` uses `Settings.resolved_database_url`.

    Returns:
        The engine, created on first use in this process.
    """
    url = url or get_settings().resolved_database_url
    with _lock:
        if os.getpid() != _owner_pid:
            _forget_inherited_pools()
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _build_engine(url)
        return engine


def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    """Return the session factory bound to this process's engine for `url`."""
    url = url or get_settings().resolved_database_url
    engine = get_engine(url)
    with _lock:
        factory = _sessionmakers.get(url)
        if factory is None:
            factory = _sessionmakers[url] = sessionmaker(engine, expire_on_commit=False)
        return factory


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engine(url: str | None = None) -> None:
    """Close the pooled connections of one engine, or of all engines when `url` is None."""
    with _lock:
        targets = [url] if url else list(_engines)
        for key in targets:
            engine = _engines.pop(key, None)
            if engine is not None:
                engine.dispose()
            _sessionmakers.pop(key, None)
