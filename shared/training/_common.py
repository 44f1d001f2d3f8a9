"""Pieces every classifier method shares: base-model paths, tokenised data, metrics."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoTokenizer, EvalPrediction, PreTrainedTokenizerBase

from shared.data import DatasetSplits, LabelledText
from shared.errors import DataError, TrainingError

__all__ = [
    "build_label_map",
    "compute_class_weights",
    "compute_classification_metrics",
    "encode_labels",
    "load_tokenizer",
    "resolve_base_path",
    "tokenize_examples",
]

logger = logging.getLogger(__name__)


def resolve_base_path(spec: str) -> Path:
    """Turn a base-model spec into a local folder.

    Args:
        spec: A folder, ``bundled:<package>``, a hub name, or
            ``registry:<name>[@version]`` for an encoder registered by
            ``diptych train mlm``.

    Returns:
        A folder in Hugging Face format.
    """
    if spec.startswith("registry:"):
        from shared.registry import find_version, verify_version

        reference = spec.removeprefix("registry:")
        if "@" not in reference:
            reference += "@latest"
        return verify_version(find_version(reference))
    from shared.basemodels import resolve_base_model

    return resolve_base_model(spec, kind="encoder").path


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer stored beside a model."""
    return AutoTokenizer.from_pretrained(str(path))


def build_label_map(splits: DatasetSplits) -> dict[str, int]:
    """Map the sorted label names to 0..n-1.

    Raises:
        DataError: If there are fewer than two labels.
    """
    if len(splits.labels) < 2:
        raise DataError(
            f"A classifier needs at least two labels, got {splits.labels!r}; "
            "check `--label-column`."
        )
    return {label: index for index, label in enumerate(splits.labels)}


def encode_labels(examples: Sequence[LabelledText], label2id: dict[str, int]) -> list[int]:
    """Return the class index of each example.

    Raises:
        DataError: If an example has a label outside the map (e.g. only in the test split).
    """
    unknown = sorted({example.label for example in examples} - set(label2id))
    if unknown:
        raise DataError(
            f"Labels {unknown[:10]!r} are not among the training labels; the model cannot "
            "predict them. Remove those rows or add training examples for them."
        )
    return [label2id[example.label] for example in examples]


def tokenize_examples(
    examples: Sequence[LabelledText],
    *,
    tokenizer: PreTrainedTokenizerBase,
    label2id: dict[str, int],
    max_length: int,
) -> Dataset:
    """Tokenise texts without padding; the collator pads each batch to its longest item."""
    encoded = tokenizer(
        [example.text for example in examples], truncation=True, max_length=max_length
    )
    columns: dict[str, Any] = dict(encoded)
    columns["labels"] = encode_labels(examples, label2id)
    return Dataset.from_dict(columns)


def compute_class_weights(labels: Sequence[int], num_labels: int) -> torch.Tensor:
    """Weights n / (k * count) per class, as scikit-learn's ``class_weight="balanced"``.

    Raises:
        TrainingError: If a class has no training example.
    """
    counts = Counter(labels)
    out_of_range = sorted(index for index in counts if not 0 <= index < num_labels)
    if out_of_range:
        raise TrainingError(
            f"Class indices {out_of_range!r} are outside 0..{num_labels - 1}; "
            "encode labels with the model's label map."
        )
    missing = [index for index in range(num_labels) if counts[index] == 0]
    if missing:
        raise TrainingError(
            f"Classes {missing!r} have no training example, so they cannot be weighted; "
            "add examples or drop those labels."
        )
    total = len(labels)
    weights = [total / (num_labels * counts[index]) for index in range(num_labels)]
    return torch.tensor(weights, dtype=torch.float32)


def compute_classification_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """Accuracy and macro-F1 for the Trainer's evaluation loop."""
    logits = prediction.predictions
    if isinstance(logits, tuple):
        logits = logits[0]
    predicted = np.asarray(logits).argmax(axis=-1)
    labels = np.asarray(prediction.label_ids)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
    }
