"""Reader for a user's own labelled table: CSV, TSV or JSON Lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipelines.datasets._files import check_columns, read_csv_records, read_text_lines, require_file
from shared.data import LabelledText
from shared.errors import DataError

__all__ = ["TABLE_SUFFIXES", "read_table"]

logger = logging.getLogger(__name__)

_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_JSONL_SUFFIXES = (".jsonl", ".json-lines", ".ndjson")
TABLE_SUFFIXES: tuple[str, ...] = (*_DELIMITERS, *_JSONL_SUFFIXES)


def read_table(
    path: Path | str,
    *,
    text_column: str,
    label_column: str,
    encoding: str = "utf-8",
) -> list[LabelledText]:
    """Read labelled texts from a CSV, TSV or JSON Lines file.

    The format follows the file suffix: `.csv` is comma-separated and `.tsv`
    tab-separated, both with a header row. `.jsonl`, `.json-lines` and `.ndjson` hold
    one JSON object per line. Rows whose text is empty or only whitespace are skipped
    and counted in an INFO log line. Integer labels in JSON Lines become strings.

    Args:
        path: The file to read.
        text_column: Name of the column (or JSON key) that contains the text.
        label_column: Name of the column (or JSON key) that contains the label.
        encoding: Text encoding of the file. A UTF-8 byte-order mark is removed.

    Returns:
        The labelled texts in file order.

    Raises:
        DatasetNotFoundError: If `path` is not a file.
        DataError: If the suffix is not supported, a column is missing, a JSON line is
            malformed, a label is empty, or the bytes are not valid in `encoding`.
    """
    path = Path(path).expanduser()
    require_file(path)
    suffix = path.suffix.lower()
    if suffix in _DELIMITERS:
        examples, skipped = _read_delimited(
            path,
            delimiter=_DELIMITERS[suffix],
            text_column=text_column,
            label_column=label_column,
            encoding=encoding,
        )
    elif suffix in _JSONL_SUFFIXES:
        examples, skipped = _read_jsonl(
            path, text_column=text_column, label_column=label_column, encoding=encoding
        )
    else:
        raise DataError(
            f"Cannot read {str(path)!r}: the suffix {suffix!r} is not supported; "
            f"rename or convert the file to one of {', '.join(TABLE_SUFFIXES)}."
        )
    if skipped:
        logger.info("read_table: skipped %d rows with empty text in %s", skipped, path)
    return examples


def _read_delimited(
    path: Path, *, delimiter: str, text_column: str, label_column: str, encoding: str
) -> tuple[list[LabelledText], int]:
    header, records = read_csv_records(path, delimiter=delimiter, encoding=encoding)
    check_columns(
        path,
        available=header,
        required=[text_column],
        fix="Pass the text column's name with --text-column (`text_column`).",
    )
    check_columns(
        path,
        available=header,
        required=[label_column],
        fix="Pass the label column's name with --label-column (`label_column`).",
    )

    examples: list[LabelledText] = []
    skipped = 0
    for record in records:
        text = record.values[text_column]
        if not text.strip():
            skipped += 1
            continue
        label = _clean_label(record.values[label_column], path=path, line=record.line)
        examples.append(LabelledText(text=text, label=label))
    return examples, skipped


def _read_jsonl(
    path: Path, *, text_column: str, label_column: str, encoding: str
) -> tuple[list[LabelledText], int]:
    examples: list[LabelledText] = []
    skipped = 0
    for line_number, line in enumerate(read_text_lines(path, encoding=encoding), 1):
        if not line.strip():
            continue
        row = _parse_json_object(line, path=path, line=line_number)
        check_columns(
            path,
            available=list(row),
            required=[text_column],
            fix=f"Line {line_number} lacks it; pass the text key with --text-column "
            "(`text_column`) or fix the line.",
        )
        check_columns(
            path,
            available=list(row),
            required=[label_column],
            fix=f"Line {line_number} lacks it; pass the label key with --label-column "
            "(`label_column`) or fix the line.",
        )
        text = _text_value(row[text_column], path=path, line=line_number)
        if not text.strip():
            skipped += 1
            continue
        label = _clean_label(row[label_column], path=path, line=line_number)
        examples.append(LabelledText(text=text, label=label))
    return examples, skipped


def _parse_json_object(text: str, *, path: Path, line: int) -> dict[str, Any]:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{str(path)!r} line {line} is not valid JSON ({exc.msg} at column {exc.colno}); "
            "each line must contain one JSON object."
        ) from exc
    if not isinstance(row, dict):
        raise DataError(
            f"{str(path)!r} line {line} contains a JSON {type(row).__name__}, not an object; "
            "each line must contain one JSON object."
        )
    return row


def _text_value(value: object, *, path: Path, line: int) -> str:
    """Return a JSON text value as a string; null counts as empty text."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{str(path)!r} line {line} has a text of type {type(value).__name__}: {value!r}; "
            "the text must be a JSON string."
        )
    return value


def _clean_label(value: object, *, path: Path, line: int) -> str:
    """Return the label stripped of surrounding whitespace; integer labels become strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(
            f"{str(path)!r} line {line} has the label {value!r}, but a row with text needs a "
            "non-empty string or integer label; fill in the label or remove the row."
        )
    return value.strip()
