"""Reader for the Bitext customer-support set: requests, intents and agent responses.

Licence: CDLA-Sharing 1.0, so published data derived from it must use the same licence.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.datasets._files import check_columns, read_csv_records, require_dataset_file
from shared.data import LabelledText
from shared.errors import DataError

__all__ = ["BITEXT_FILE", "BITEXT_FOLDER", "read_bitext"]

logger = logging.getLogger(__name__)

BITEXT_FOLDER = "bitext-customer-support"
BITEXT_FILE = "Bitext_Sample_Customer_Support_Training_Dataset.csv"
_COLUMNS = ("instruction", "intent", "category", "response")


def read_bitext(data_dir: Path | str) -> list[LabelledText]:
    """Read the Bitext customer requests labelled with their intent.

    Each example's text is the `instruction` column (the customer's request) and its
    label the `intent` column. `meta` contains `category` (the intent's group, such as
    ORDER) and `response` (an example agent reply, which can contain placeholders such
    as ``{{Order Number}}``). Rows with an empty instruction are skipped.

    Args:
        data_dir: The folder that contains `bitext-customer-support/`.

    Returns:
        The examples in file order.

    Raises:
        DatasetNotFoundError: If the folder or the CSV file is missing.
        DataError: If a column is missing or a row has an empty intent.
    """
    path = require_dataset_file(data_dir, BITEXT_FOLDER, BITEXT_FILE)
    header, records = read_csv_records(path)
    check_columns(
        path,
        available=header,
        required=_COLUMNS,
        fix="The file is not the Bitext sample CSV; restore it from the Bitext release.",
    )

    examples: list[LabelledText] = []
    for record in records:
        values = record.values
        if not values["instruction"].strip():
            continue
        if not values["intent"].strip():
            raise DataError(
                f"{str(path)!r} line {record.line} has an empty `intent`; restore the file."
            )
        meta = {"category": values["category"], "response": values["response"]}
        examples.append(LabelledText(text=values["instruction"], label=values["intent"], meta=meta))

    skipped = len(records) - len(examples)
    if skipped:
        logger.info("bitext: skipped %d rows with an empty instruction", skipped)
    logger.info("bitext: read %d examples", len(examples))
    return examples
