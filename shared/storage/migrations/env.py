"""Alembic environment: takes the URL from the config built in `shared.storage.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from shared.storage.base import Base
from shared.storage.engine import get_engine

config = context.config
target_metadata = Base.metadata

# Key of the PostgreSQL advisory lock held while migrations run, so that
# `diptych db upgrade` started on several machines at once upgrades once and
# the others find the schema current. Any fixed 64-bit number works.
MIGRATION_LOCK_KEY = 0x44495054_59434800


def run_migrations_offline() -> None:
    context.configure(
        url=config.attributes["database_url"],
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = get_engine(config.attributes["database_url"])
    with engine.connect() as connection:
        # Batch mode lets ALTER TABLE work on SQLite, which rebuilds the table instead.
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Released when this transaction ends. Alembic reads the current
                # revision after this point, so a waiting process sees the
                # finished upgrade.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
