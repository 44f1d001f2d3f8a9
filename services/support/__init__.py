"""Support service: triage, retrieval and drafted replies."""
