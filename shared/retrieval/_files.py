"""Atomic file writes and JSON reads for saved indexes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.errors import RetrievalError

__all__ = ["read_json_file", "utc_timestamp", "write_atomically", "write_json_atomically"]


def utc_timestamp() -> str:
    """Return the current UTC time in ISO 8601 form, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write` on a temporary name beside `path`, flush it to disk, then rename it.

    A reader sees either the old file or the complete new one, because `os.replace`
    is atomic on POSIX and Windows when both names are in the same folder.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_atomically(path: Path, data: Any) -> None:
    """Write `data` as indented UTF-8 JSON to `path` through `write_atomically`."""
    text = json.dumps(data, ensure_ascii=False, indent=2)

    def write_text(target: Path) -> None:
        target.write_text(text, encoding="utf-8")

    write_atomically(path, write_text)


def read_json_file(path: Path, *, description: str) -> dict[str, Any]:
    """Read a JSON object written by `write_json_atomically`.

    Args:
        path: The file to read.
        description: What the file is, for error messages, e.g. ``"index manifest"``.

    Raises:
        RetrievalError: If the file is missing or does not contain a JSON object.
    """
    if not path.is_file():
        raise RetrievalError(
            f"{description} {str(path)!r} not found. Save the index to this folder first, "
            "or pass the folder it was saved to."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RetrievalError(
            f"{description} {str(path)!r} is not valid JSON ({exc}). Rebuild the index."
        ) from exc
    if not isinstance(data, dict):
        raise RetrievalError(
            f"{description} {str(path)!r} must contain a JSON object, got "
            f"{type(data).__name__}. Rebuild the index."
        )
    return data
