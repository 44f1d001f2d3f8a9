"""Reader for the StockNet tweet subset (Xu and Cohen, 2018; MIT): unlabelled tweets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipelines.datasets._files import read_text_lines, require_dataset_file
from shared.errors import DataError

__all__ = ["STOCKNET_FOLDER", "read_stocknet_texts"]

logger = logging.getLogger(__name__)

STOCKNET_FOLDER = "stocknet-tweets-subset"


def read_stocknet_texts(data_dir: Path | str) -> list[str]:
    """Read the tweet texts of `stocknet-tweets-subset/tweets.jsonl`, in file order.

    The texts are lower-cased and pre-tokenised, with `AT_USER` and `URL` in place of
    user names and links. Tweets with empty text are skipped.

    Args:
        data_dir: The folder that contains `stocknet-tweets-subset/`.

    Returns:
        The texts, with repeats kept.

    Raises:
        DatasetNotFoundError: If the folder or the file is missing.
        DataError: If a line is not a JSON object with a string `text`.
    """
    path = require_dataset_file(data_dir, STOCKNET_FOLDER, "tweets.jsonl")
    texts: list[str] = []
    for line_number, line in enumerate(read_text_lines(path), 1):
        if not line.strip():
            continue
        try:
            tweet = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{str(path)!r} line {line_number} is not valid JSON ({exc.msg}); restore the file."
            ) from exc
        if not isinstance(tweet, dict) or not isinstance(tweet.get("text"), str):
            raise DataError(
                f"{str(path)!r} line {line_number} must be a JSON object with a string `text`."
            )
        if tweet["text"].strip():
            texts.append(tweet["text"])
    logger.info("stocknet: read %d tweets", len(texts))
    return texts
