"""Alembic scripts of the sentiment tables, on the `sentiment` branch."""
