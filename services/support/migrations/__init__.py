"""Alembic scripts of the support tables, on the `support` branch."""
