"""Named data sets and the train/dev/test splits built from them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipelines.datasets._files import resolve_data_dir
from pipelines.datasets.banking77 import read_banking77
from pipelines.datasets.bitext import read_bitext
from pipelines.datasets.fiqa import read_fiqa
from pipelines.datasets.phrasebank import read_phrasebank
from pipelines.datasets.sentfin import read_sentfin
from pipelines.datasets.table import read_table
from shared.data import DatasetSplits, LabelledText, split_examples
from shared.errors import DataError

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "get_dataset_spec",
    "load_dataset_splits",
    "load_table_splits",
]

logger = logging.getLogger(__name__)

# Examples to split, and the data set's own test split or None to carve one.
ReadResult = tuple[list[LabelledText], list[LabelledText] | None]


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set that `load_dataset_splits` can read.

    Attributes:
        name: The registry key.
        description: One line on the task and the labels.
        licence: The licence as the source states it, with its use limits.
        read: Reads the data set from the data folder, passing `options` as keyword
            arguments.
        options: Names of the keyword options that `read` accepts.
    """

    name: str
    description: str
    licence: str
    read: Callable[..., ReadResult]
    options: tuple[str, ...] = ()


def _read_banking77(data_dir: Path) -> ReadResult:
    return read_banking77(data_dir)


def _read_bitext(data_dir: Path) -> ReadResult:
    return read_bitext(data_dir), None


def _read_phrasebank(data_dir: Path, *, agreement: str = "50") -> ReadResult:
    return read_phrasebank(data_dir, agreement=agreement), None


def _read_sentfin(data_dir: Path) -> ReadResult:
    return read_sentfin(data_dir), None


def _read_fiqa(data_dir: Path, *, neutral_band: float = 0.1) -> ReadResult:
    return read_fiqa(data_dir, neutral_band=neutral_band), None


DATASETS: Mapping[str, DatasetSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            DatasetSpec(
                name="banking77",
                description="Online-banking queries, 77 intents; official test split.",
                licence="CC BY 4.0",
                read=_read_banking77,
            ),
            DatasetSpec(
                name="bitext",
                description="Customer-support requests, 27 intents, with agent responses.",
                licence="CDLA-Sharing 1.0",
                read=_read_bitext,
            ),
            DatasetSpec(
                name="phrasebank",
                description="Financial news sentences; positive, neutral, negative.",
                licence="CC BY-NC-SA 3.0: non-commercial use only",
                read=_read_phrasebank,
                options=("agreement",),
            ),
            DatasetSpec(
                name="sentfin",
                description="Financial headlines, one sentiment label per named entity.",
                licence="MIT",
                read=_read_sentfin,
            ),
            DatasetSpec(
                name="fiqa",
                description="Financial headlines and posts, sentiment score per target.",
                licence="none stated: evaluation only",
                read=_read_fiqa,
                options=("neutral_band",),
            ),
        )
    }
)


def get_dataset_spec(name: str) -> DatasetSpec:
    """Return the registry entry of data set `name`.

    Raises:
        DataError: If `name` is not registered; the message lists the known names.
    """
    if name not in DATASETS:
        raise DataError(
            f"Unknown data set {name!r} (`--dataset`); use one of "
            f"{', '.join(map(repr, DATASETS))}, or pass your own CSV, TSV or JSON Lines file "
            "with `--train-file` (`load_table_splits` in Python)."
        )
    return DATASETS[name]


def load_dataset_splits(
    name: str,
    *,
    data_dir: Path | str | None = None,
    seed: int = 42,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    **options: Any,
) -> DatasetSplits:
    """Read a registered data set and split it with `split_examples`.

    Banking77 keeps its official test split and ignores `test_fraction`. The other
    sets have no official split, so the test split is carved like the dev split.

    Args:
        name: A key of `DATASETS`: "banking77", "bitext", "phrasebank", "sentfin" or
            "fiqa".
        data_dir: The folder of the data sets; None uses DIPTYCH_DATA_DIR.
        seed: Seed of the split.
        dev_fraction: Share of each label's distinct texts that goes to dev.
        test_fraction: Share of each label's distinct texts that goes to test.
        **options: Options of the data set's reader: `agreement` for "phrasebank",
            `neutral_band` for "fiqa".

    Returns:
        The splits.

    Raises:
        DataError: If `name` is unknown or the data is malformed.
        TypeError: If an option is not accepted by the data set.
        DatasetNotFoundError: If the data folder or a file is missing.
        ValueError: If a fraction or an option value is invalid.
    """
    spec = get_dataset_spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(spec.options) or "none"
        raise TypeError(
            f"Data set {name!r} does not accept the options {unknown!r}; accepted: {accepted}."
        )

    examples, explicit_test = spec.read(resolve_data_dir(data_dir), **options)
    logger.info("load_dataset_splits: read %s, %d examples", name, len(examples))
    return split_examples(
        examples,
        dev_fraction=dev_fraction,
        test_fraction=test_fraction,
        seed=seed,
        explicit_test=explicit_test,
    )


def load_table_splits(
    path: Path | str,
    *,
    text_column: str,
    label_column: str,
    encoding: str = "utf-8",
    test_path: Path | str | None = None,
    seed: int = 42,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> DatasetSplits:
    """Read a CSV, TSV or JSON Lines file with `read_table` and split it.

    Args:
        path: The labelled file.
        text_column: Name of the column (or JSON key) that contains the text.
        label_column: Name of the column (or JSON key) that contains the label.
        encoding: Text encoding of both files.
        test_path: An optional file in the same format and columns that is used
            unchanged as the test split; `test_fraction` is then ignored.
        seed: Seed of the split.
        dev_fraction: Share of each label's distinct texts that goes to dev.
        test_fraction: Share of each label's distinct texts that goes to test.

    Returns:
        The splits.

    Raises:
        DatasetNotFoundError: If a file is missing.
        DataError: If a file is malformed or lacks a column.
        ValueError: If a fraction is invalid.
    """
    columns = {"text_column": text_column, "label_column": label_column, "encoding": encoding}
    examples = read_table(path, **columns)
    explicit_test = None if test_path is None else read_table(test_path, **columns)
    return split_examples(
        examples,
        dev_fraction=dev_fraction,
        test_fraction=test_fraction,
        seed=seed,
        explicit_test=explicit_test,
    )
