"""Logging set-up for command-line entry points.

Library modules only create loggers with `logging.getLogger(__name__)`; the
CLI and the worker call `configure_logging` once.
"""

from __future__ import annotations

import logging

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once for a process.

    Args:
        level: A standard logging level name such as ``"INFO"`` or ``"DEBUG"``.

    Raises:
        ValueError: If `level` is not a logging level name.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(
            f"`level` must be a logging level name such as 'INFO' or 'DEBUG', got {level!r}."
        )
    logging.basicConfig(level=numeric, format=_FORMAT)
    # Third-party libraries log every HTTP probe and file lock at INFO.
    # faiss logs each CPU build it tries and fails to load; bm25s sets DEBUG itself.
    for noisy in ("httpx", "filelock", "urllib3", "huggingface_hub", "alembic", "faiss", "bm25s"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
