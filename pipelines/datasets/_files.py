"""Locating data-set files and reading CSV records with line numbers."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import DataError, DatasetNotFoundError
from shared.settings import get_settings

if TYPE_CHECKING:
    import _csv

__all__ = [
    "CsvRecord",
    "check_columns",
    "read_csv_records",
    "read_text_file",
    "read_text_lines",
    "require_dataset_file",
    "require_file",
    "resolve_data_dir",
]

_DATA_DIR_HINT = (
    "Set DIPTYCH_DATA_DIR (an environment variable; in Python you may pass `data_dir`) "
    "to the folder that contains banking77/, "
    "bitext-customer-support/, financial-phrasebank/, sentfin/, fiqa-sentiment/, "
    "stocknet-tweets-subset/ and movielens-latest-small/."
)


@dataclass(frozen=True)
class CsvRecord:
    """One CSV data row as a column-to-value mapping, with the file line it starts on."""

    line: int
    values: dict[str, str]


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """Return the folder of the public data sets.

    Args:
        data_dir: The folder to use. When None, the setting `data_dir`
            (environment variable DIPTYCH_DATA_DIR) is used.

    Returns:
        The folder, with `~` expanded.

    Raises:
        DatasetNotFoundError: If neither `data_dir` nor the setting is set, or the
            folder does not exist.
    """
    if data_dir is None:
        data_dir = get_settings().data_dir
    if data_dir is None:
        raise DatasetNotFoundError(f"No data folder is set. {_DATA_DIR_HINT}")
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"The data folder {str(folder)!r} does not exist. {_DATA_DIR_HINT}"
        )
    return folder


def require_file(path: Path) -> Path:
    """Return `path` if it is a file, else raise DatasetNotFoundError naming it."""
    if not path.is_file():
        raise DatasetNotFoundError(f"Data file {str(path)!r} not found; check the path.")
    return path


def require_dataset_file(data_dir: Path | str, folder: str, name: str) -> Path:
    """Return the path of file `name` of the data set in `data_dir / folder`.

    Raises:
        DatasetNotFoundError: If the data-set folder or the file is missing. The
            message names the missing one.
    """
    set_dir = Path(data_dir).expanduser() / folder
    if not set_dir.is_dir():
        raise DatasetNotFoundError(f"Data-set folder {str(set_dir)!r} not found. {_DATA_DIR_HINT}")
    path = set_dir / name
    if not path.is_file():
        raise DatasetNotFoundError(
            f"Data file {str(path)!r} not found; the folder {folder}/ lacks {name!r}. "
            "Restore the file from the data set's source."
        )
    return path


def read_text_file(path: Path, *, encoding: str = "utf-8") -> str:
    """Read a whole text file, turning decoding failures into DataError.

    A UTF-8 byte-order mark is removed when `encoding` is UTF-8.

    Raises:
        DatasetNotFoundError: If `path` is not a file.
        ValueError: If `encoding` is not the name of a codec that Python supports.
        DataError: If the bytes are not valid in `encoding`.
    """
    require_file(path)
    try:
        codec = codecs.lookup(encoding).name
    except LookupError as exc:
        raise ValueError(
            f"`encoding` must be a codec name such as 'utf-8' or 'latin-1', got {encoding!r}."
        ) from exc
    try:
        return path.read_text(encoding="utf-8-sig" if codec == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{str(path)!r} is not valid {encoding} text ({exc.reason} at byte {exc.start}); "
            "pass the file's real encoding."
        ) from exc


def read_text_lines(path: Path, *, encoding: str = "utf-8") -> list[str]:
    """Read a text file as lines without their line ends.

    Only LF, CR and CRLF end a line. `str.splitlines` would also split at U+0085,
    U+2028 and other separators, which may occur inside a sentence or a JSON string.

    Raises:
        DatasetNotFoundError: If `path` is not a file.
        ValueError: If `encoding` is not the name of a codec that Python supports.
        DataError: If the bytes are not valid in `encoding`.
    """
    text = read_text_file(path, encoding=encoding)
    return [line.rstrip("\n") for line in io.StringIO(text, newline=None)]


def read_csv_records(
    path: Path, *, delimiter: str = ",", encoding: str = "utf-8"
) -> tuple[list[str], list[CsvRecord]]:
    """Read a delimited file with a header row.

    Blank lines are skipped. A row with fewer fields than the header gets empty
    strings for the missing ones.

    Args:
        path: The file.
        delimiter: The field separator.
        encoding: The text encoding of the file.

    Returns:
        The column names and the data rows.

    Raises:
        DatasetNotFoundError: If `path` is not a file.
        DataError: If the file has no header or repeats a column name, a row has more
            fields than the header or is not valid CSV, or the bytes are not valid in
            `encoding`.
    """
    reader = csv.reader(
        io.StringIO(read_text_file(path, encoding=encoding), newline=""), delimiter=delimiter
    )
    try:
        header = next(reader, None)
        if not header:
            raise DataError(
                f"{str(path)!r} has no header row; the first line must name the columns."
            )
        if len(set(header)) < len(header):
            raise DataError(f"{str(path)!r} repeats a column name in its header {header!r}.")
        records = _read_records(reader, path=path, header=header, delimiter=delimiter)
    except csv.Error as exc:
        raise DataError(
            f"{str(path)!r} line {reader.line_num} is not valid CSV: {exc}; fix the line."
        ) from exc
    return header, records


def _read_records(
    reader: _csv.Reader, *, path: Path, header: list[str], delimiter: str
) -> list[CsvRecord]:
    records: list[CsvRecord] = []
    start_line = reader.line_num + 1
    for row in reader:
        if row:
            if len(row) > len(header):
                raise DataError(
                    f"{str(path)!r} line {start_line} has {len(row)} fields but the header has "
                    f"{len(header)}; quote fields that contain {delimiter!r}."
                )
            values = dict(zip(header, [*row, *[""] * (len(header) - len(row))], strict=True))
            records.append(CsvRecord(line=start_line, values=values))
        start_line = reader.line_num + 1
    return records


def check_columns(
    path: Path, *, available: Sequence[str], required: Sequence[str], fix: str
) -> None:
    """Raise DataError if a column in `required` is not in `available`.

    The message lists the columns that exist and ends with `fix`, which explains how to
    correct the call or the file.
    """
    missing = [column for column in required if column not in available]
    if missing:
        raise DataError(
            f"{str(path)!r} has no column {', '.join(map(repr, missing))}; "
            f"its columns are {', '.join(map(repr, available))}. {fix}"
        )
