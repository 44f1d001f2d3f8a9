"""Labelled-text examples and leak-free train/dev/test splits.

This package reads no particular data set. The readers are in `pipelines.datasets`.
"""

from shared.data.examples import (
    LabelledText,
    deduplicate,
    deduplicate_texts,
    normalize_text,
    text_hash,
)
from shared.data.splits import SPLIT_NAMES, DatasetSplits, split_examples

__all__ = [
    "SPLIT_NAMES",
    "DatasetSplits",
    "LabelledText",
    "deduplicate",
    "deduplicate_texts",
    "normalize_text",
    "split_examples",
    "text_hash",
]
