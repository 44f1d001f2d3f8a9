"""Alembic scripts of the recommender tables, on the `recommender` branch."""
