"""Reader for FiQA 2018 task 1: aspect-based sentiment of financial headlines and posts.

Licence: none stated by the FiQA 2018 organisers. Use the data for evaluation only, and
never bundle it with the product or train a released model on it, until a licence is
confirmed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any

from pipelines.datasets._files import read_text_file, require_dataset_file
from shared.data import LabelledText
from shared.errors import DataError

__all__ = ["FIQA_FOLDER", "FIQA_SOURCES", "label_for_score", "read_fiqa"]

logger = logging.getLogger(__name__)

FIQA_FOLDER = "fiqa-sentiment"
# Only the train files carry sentiment scores; the test files are unlabelled.
FIQA_SOURCES: tuple[str, ...] = ("headline", "post")


def read_fiqa(data_dir: Path | str, *, neutral_band: float = 0.1) -> list[LabelledText]:
    """Read one example per (sentence, target) pair of the labelled FiQA files.

    Reads `fiqa-sentiment/task1_headline_ABSA_train.json` and
    `task1_post_ABSA_train.json`. The continuous `sentiment_score` in [-1, 1] becomes a
    label: negative at or below `-neutral_band`, positive at or above `neutral_band`,
    and neutral in between. `meta` contains `target` (the company or ticker), `score` (the
    score as written in the file), `source` ("headline" or "post") and `record_id`.

    The data has no stated licence: use it for evaluation only.

    Args:
        data_dir: The folder that contains `fiqa-sentiment/`.
        neutral_band: Scores with an absolute value below this are neutral, in [0, 1].
            With 0 no example is neutral, and a score of exactly 0 is positive.

    Returns:
        The headline examples, then the post examples, each in file order.

    Raises:
        ValueError: If `neutral_band` is outside [0, 1].
        DatasetNotFoundError: If the folder or a file is missing.
        DataError: If a file is not in the FiQA task 1 format.
    """
    if isinstance(neutral_band, bool) or not 0.0 <= neutral_band <= 1.0:
        raise ValueError(f"`neutral_band` must be a number in [0, 1], got {neutral_band!r}.")
    examples: list[LabelledText] = []
    for source in FIQA_SOURCES:
        path = require_dataset_file(data_dir, FIQA_FOLDER, f"task1_{source}_ABSA_train.json")
        records = _load_records(path)
        for record_id, record in records.items():
            examples.extend(
                _record_examples(
                    record, record_id=record_id, source=source, path=path, neutral_band=neutral_band
                )
            )
    logger.info("fiqa: read %d (sentence, target) pairs", len(examples))
    return examples


def label_for_score(score: float, *, neutral_band: float = 0.1) -> str:
    """Map a sentiment score in [-1, 1] to negative, neutral or positive."""
    if score <= -neutral_band:
        return "negative"
    if score >= neutral_band:
        return "positive"
    return "neutral"


def _load_records(path: Path) -> dict[str, Any]:
    try:
        records = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{str(path)!r} is not valid JSON: {exc}; restore the file.") from exc
    if not isinstance(records, dict):
        raise DataError(
            f"{str(path)!r} must contain a JSON object of records keyed by id, "
            f"got a {type(records).__name__}."
        )
    return records


def _record_examples(
    record: Any, *, record_id: str, source: str, path: Path, neutral_band: float
) -> list[LabelledText]:
    where = f"{str(path)!r} record {record_id!r}"
    if not isinstance(record, dict) or not isinstance(record.get("sentence"), str):
        raise DataError(f"{where} must be an object with a string `sentence`.")
    infos = record.get("info")
    if not isinstance(infos, list):
        raise DataError(f"{where} must have a list `info` of targets.")

    examples = []
    for info in infos:
        if not isinstance(info, dict) or not isinstance(info.get("target"), str):
            raise DataError(f"{where} has an `info` entry without a string `target`: {info!r}.")
        raw_score = info.get("sentiment_score")
        score = _parse_score(raw_score, where=where)
        meta = {
            "target": info["target"],
            "score": str(raw_score),
            "source": source,
            "record_id": record_id,
        }
        label = label_for_score(score, neutral_band=neutral_band)
        examples.append(LabelledText(text=record["sentence"], label=label, meta=meta))
    return examples


def _parse_score(raw_score: object, *, where: str) -> float:
    """Return the score as a float; the files store it as a string such as "-0.374"."""
    score = math.nan
    if isinstance(raw_score, str | int | float) and not isinstance(raw_score, bool):
        with contextlib.suppress(ValueError):
            score = float(raw_score)
    if not -1.0 <= score <= 1.0:
        raise DataError(f"{where} has the sentiment_score {raw_score!r}, not a number in [-1, 1].")
    return score
