"""Reader for Banking77: online-banking queries labelled with 77 intents (CC BY 4.0)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from pipelines.datasets._files import read_text_file, require_dataset_file
from pipelines.datasets.table import read_table
from shared.data import LabelledText
from shared.errors import DataError

__all__ = ["BANKING77_FOLDER", "read_banking77", "read_banking77_categories"]

logger = logging.getLogger(__name__)

BANKING77_FOLDER = "banking77"
_CATEGORY_COUNT = 77
# Maximum number of label names that an error message lists.
_MAX_LISTED = 10


def read_banking77(data_dir: Path | str) -> tuple[list[LabelledText], list[LabelledText]]:
    """Read the official Banking77 train and test splits.

    Reads `banking77/train.csv` and `banking77/test.csv` (columns `text` and
    `category`) and checks that each split's label set equals the 77 intents of
    `banking77/categories.json`.

    Args:
        data_dir: The folder that contains `banking77/`.

    Returns:
        The train examples and the test examples, in file order.

    Raises:
        DatasetNotFoundError: If the folder or one of its three files is missing.
        DataError: If a file is malformed or a split's labels differ from the
            categories.
    """
    categories = read_banking77_categories(data_dir)
    splits = []
    for name in ("train.csv", "test.csv"):
        path = require_dataset_file(data_dir, BANKING77_FOLDER, name)
        examples = read_table(path, text_column="text", label_column="category")
        _check_labels(path, labels={example.label for example in examples}, categories=categories)
        splits.append(examples)
    train, test = splits
    logger.info(
        "banking77: read train=%d test=%d intents=%d", len(train), len(test), len(categories)
    )
    return train, test


def read_banking77_categories(data_dir: Path | str) -> list[str]:
    """Read the 77 intent names of `banking77/categories.json`, in file order.

    Raises:
        DatasetNotFoundError: If the file is missing.
        DataError: If the file is not a JSON list of 77 distinct strings.
    """
    path = require_dataset_file(data_dir, BANKING77_FOLDER, "categories.json")
    try:
        categories = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{str(path)!r} is not valid JSON: {exc}; restore the file.") from exc
    is_valid = (
        isinstance(categories, list)
        and all(isinstance(name, str) for name in categories)
        and len(set(categories)) == len(categories) == _CATEGORY_COUNT
    )
    if not is_valid:
        raise DataError(
            f"{str(path)!r} must be a JSON list of {_CATEGORY_COUNT} distinct intent names; "
            "restore the file from the Banking77 release."
        )
    return categories


def _check_labels(path: Path, *, labels: set[str], categories: Iterable[str]) -> None:
    expected = set(categories)
    missing = sorted(expected - labels)
    unknown = sorted(labels - expected)
    if missing or unknown:
        raise DataError(
            f"The labels of {str(path)!r} do not match categories.json: "
            f"{len(unknown)} unknown ({', '.join(unknown[:_MAX_LISTED])}) and "
            f"{len(missing)} missing ({', '.join(missing[:_MAX_LISTED])}); "
            "restore the Banking77 files from one release."
        )
