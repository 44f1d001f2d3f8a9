"""Alembic environment: takes the URL from the config built in `shared.storage.migrate`."""

from __future__ import annotations

from alembic import context

from shared.storage.base import Base
from shared.storage.engine import get_engine

config = context.config
target_metadata = Base.metadata


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
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
