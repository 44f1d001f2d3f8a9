"""Reader for SEntFiN 1.0: financial headlines with a sentiment label per entity (MIT).

Sinha, Kedas, Kumar and Malo (2022), "SEntFiN 1.0: Entity-aware sentiment analysis for
financial news", JASIST, doi:10.1002/asi.24634.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pipelines.datasets._files import check_columns, read_csv_records, require_dataset_file
from shared.data import LabelledText
from shared.errors import DataError

__all__ = ["SENTFIN_FOLDER", "parse_sentfin_decisions", "read_sentfin", "read_sentfin_entities"]

logger = logging.getLogger(__name__)

SENTFIN_FOLDER = "sentfin"
# Rows and (entity, label) pairs of SEntFiN.csv v1.0, counted with `_PAIR` below.
_EXPECTED_HEADLINES = 10_753
_EXPECTED_PAIRS = 14_405

# One `'entity': 'label'` pair of the Decisions column. The column looks like a Python
# dict, but `ast.literal_eval` rejects 13 rows because an entity name contains an
# unescaped apostrophe ('Osian's Art Fund'). One row quotes its key with double quotes.
# The lazy entity group ends only at a quote that is followed by `: '<label>'`, so an
# apostrophe inside a name does not end it.
_PAIR = re.compile(
    r"""(?P<quote>['"])(?P<entity>.+?)(?P=quote)\s*:\s*"""
    r"""(?P<label_quote>['"])(?P<label>positive|neutral|negative)(?P=label_quote)"""
)
# The remainder of a well-formed Decisions value after every pair is removed.
_DICT_REST = re.compile(r"\{[\s,]*\}")


def read_sentfin(data_dir: Path | str) -> list[LabelledText]:
    """Read one example per (headline, entity) pair of `sentfin/SEntFiN.csv`.

    The text is the headline (column `Title`) and the label the entity's sentiment:
    positive, neutral or negative. `meta` contains `entity` (the entity name as written in
    the Decisions column) and `headline_id` (column `S No.`). A headline that names
    several entities yields several examples with the same text, possibly with
    different labels, so a text-only classifier cannot separate them.

    Args:
        data_dir: The folder that contains `sentfin/`.

    Returns:
        The examples in file order.

    Raises:
        DatasetNotFoundError: If the folder or the file is missing.
        DataError: If a column is missing or a Decisions value cannot be parsed.
    """
    path = require_dataset_file(data_dir, SENTFIN_FOLDER, "SEntFiN.csv")
    header, records = read_csv_records(path)
    check_columns(
        path,
        available=header,
        required=("S No.", "Title", "Decisions"),
        fix="The file is not SEntFiN 1.0; restore it from the SEntFiN release.",
    )

    examples: list[LabelledText] = []
    for record in records:
        values = record.values
        try:
            pairs = parse_sentfin_decisions(values["Decisions"])
        except DataError as exc:
            raise DataError(f"{str(path)!r} line {record.line}: {exc}") from exc
        for entity, label in pairs:
            meta = {"entity": entity, "headline_id": values["S No."]}
            examples.append(LabelledText(text=values["Title"], label=label, meta=meta))

    _log_counts(headline_count=len(records), pair_count=len(examples))
    return examples


def parse_sentfin_decisions(decisions: str) -> list[tuple[str, str]]:
    """Parse a Decisions value such as ``{'SpiceJet': 'neutral'}`` without evaluating it.

    Args:
        decisions: The raw column value.

    Returns:
        The (entity, label) pairs in their written order.

    Raises:
        DataError: If anything other than pairs, commas and braces remains, for
            example an unknown label or a missing quote.
    """
    pairs = [(match["entity"], match["label"]) for match in _PAIR.finditer(decisions)]
    if not _DICT_REST.fullmatch(_PAIR.sub("", decisions).strip()):
        raise DataError(
            f"Cannot parse the Decisions value {decisions!r}; it must look like "
            "{'entity': 'positive'|'neutral'|'negative', ...}."
        )
    return pairs


def read_sentfin_entities(data_dir: Path | str) -> list[tuple[str, list[str]]]:
    """Read the entity list of `sentfin/entity_list_comprehensive.csv`.

    Column `Entity` contains comma-separated surface forms such as
    "Prime Focus Ltd, Prime Focus, PFOCUS". They are split at commas, stripped, and
    repeats are dropped.

    Args:
        data_dir: The folder that contains `sentfin/`.

    Returns:
        One (symbol, surface forms) pair per row, in file order.

    Raises:
        DatasetNotFoundError: If the folder or the file is missing.
        DataError: If a column is missing or a row has an empty symbol.
    """
    path = require_dataset_file(data_dir, SENTFIN_FOLDER, "entity_list_comprehensive.csv")
    header, records = read_csv_records(path)
    check_columns(
        path,
        available=header,
        required=("Symbol", "Entity"),
        fix="Restore the file from the SEntFiN release.",
    )

    entities: list[tuple[str, list[str]]] = []
    for record in records:
        symbol = record.values["Symbol"].strip()
        if not symbol:
            raise DataError(f"{str(path)!r} line {record.line} has an empty `Symbol`.")
        forms = [form.strip() for form in record.values["Entity"].split(",")]
        entities.append((symbol, list(dict.fromkeys(form for form in forms if form))))
    return entities


def _log_counts(*, headline_count: int, pair_count: int) -> None:
    if (headline_count, pair_count) != (_EXPECTED_HEADLINES, _EXPECTED_PAIRS):
        logger.warning(
            "sentfin: read %d headlines and %d pairs, but SEntFiN 1.0 has %d and %d; "
            "check that the file is the unchanged v1.0 release",
            headline_count,
            pair_count,
            _EXPECTED_HEADLINES,
            _EXPECTED_PAIRS,
        )
    else:
        logger.info("sentfin: read %d headlines, %d pairs", headline_count, pair_count)
