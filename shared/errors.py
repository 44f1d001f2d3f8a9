"""The exception hierarchy of the Diptych core.

    DiptychError
    ├── ConfigurationError        a setting or config file is invalid
    ├── DataError                 a data set is missing, malformed or unusable
    │   └── DatasetNotFoundError  the data-set folder or file does not exist
    ├── BaseModelError            a base model cannot be resolved or loaded
    ├── TrainingError             a fine-tuning run failed or cannot start
    ├── RegistryError             a model version cannot be found, stored or trusted
    │   ├── ModelVersionNotFoundError
    │   └── IntegrityError        files changed since registration, or labels unusable
    ├── RetrievalError            a search index cannot be built, loaded or queried
    │   └── IndexMismatchError    an index was built with another embedding model
    └── GenerationError           a causal LM cannot load, fit a prompt or generate

Each class also derives from the built-in exception that matches its meaning
(`ValueError`, `FileNotFoundError`, `LookupError`), so callers that catch the
built-ins keep working.
"""

from __future__ import annotations

__all__ = [
    "BaseModelError",
    "ConfigurationError",
    "DataError",
    "DatasetNotFoundError",
    "DiptychError",
    "GenerationError",
    "IndexMismatchError",
    "IntegrityError",
    "ModelVersionNotFoundError",
    "RegistryError",
    "RetrievalError",
    "TrainingError",
]


class DiptychError(Exception):
    """Base class of every error the Diptych core raises on purpose."""


class ConfigurationError(DiptychError, ValueError):
    """A setting, CLI option or config file has an invalid value."""


class DataError(DiptychError, ValueError):
    """A data set is malformed or cannot be used for the requested job."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A data-set folder or file does not exist where it was expected."""


class BaseModelError(DiptychError, ValueError):
    """A base model cannot be resolved from a folder, a package or a hub name."""


class TrainingError(DiptychError, RuntimeError):
    """A fine-tuning run cannot start or failed part-way."""


class RegistryError(DiptychError):
    """A model version cannot be stored, found or loaded."""


class ModelVersionNotFoundError(RegistryError, LookupError):
    """No model version matches the requested name, version or stage."""


class IntegrityError(RegistryError, ValueError):
    """A registered model's files or label map fail verification."""


class RetrievalError(DiptychError, ValueError):
    """A search index cannot be built, saved, loaded or queried."""


class IndexMismatchError(RetrievalError):
    """A stored index was built with another embedding model or dimension."""


class GenerationError(DiptychError, RuntimeError):
    """A causal LM cannot be loaded, cannot fit a prompt, or failed to generate."""
