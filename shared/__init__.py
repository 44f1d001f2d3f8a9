"""Diptych's fine-tuning core: settings, storage, base models, training, registry, inference.

Services and pipelines import this package; it imports neither of them.
"""
