"""Database access: one SQLAlchemy engine per process, sessions, Alembic migrations."""

from shared.storage.base import Base
from shared.storage.engine import dispose_engine, get_engine, get_sessionmaker, session_scope
from shared.storage.migrate import (
    build_alembic_config,
    ensure_database_ready,
    find_schema_problem,
    upgrade_database,
)

__all__ = [
    "Base",
    "build_alembic_config",
    "dispose_engine",
    "ensure_database_ready",
    "find_schema_problem",
    "get_engine",
    "get_sessionmaker",
    "session_scope",
    "upgrade_database",
]
