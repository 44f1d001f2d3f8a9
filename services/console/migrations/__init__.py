"""Alembic scripts of the console tables, on the `console` branch."""
