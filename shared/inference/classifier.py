"""Text classification for services: load once per process, score batches.

`TextClassifier.predict` never fails a batch because of one item: an empty or
whitespace-only text gets a `Prediction` with `error` set and the others are
scored. Input longer than the model's `max_length` is truncated and flagged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from shared.inference.batching import iter_length_buckets
from shared.inference.device import select_device

__all__ = [
    "CLASSIFIER_SETTINGS_FILE",
    "Prediction",
    "TextClassifier",
    "clear_classifier_cache",
    "load_text_classifier",
]

logger = logging.getLogger(__name__)

CLASSIFIER_SETTINGS_FILE = "diptych_classifier.json"
EMPTY_TEXT_ERROR = "empty text: send at least one non-whitespace character"


@dataclass(frozen=True)
class Prediction:
    """The result for one input text.

    Attributes:
        label: Most probable label, or ``None`` when `error` is set.
        score: Probability of `label`.
        distribution: Probability of every label.
        truncated: Whether the text was cut to the model's maximum length.
        out_of_scope: Whether `score` fell below the model's out-of-scope threshold.
        error: Why the item was not scored, or ``None``.
    """

    label: str | None
    score: float | None
    distribution: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    out_of_scope: bool = False
    error: str | None = None

    @property
    def is_ok(self) -> bool:
        """Whether the item was scored."""
        return self.error is None


class TextClassifier:
    """A loaded sequence classifier with its tokenizer and serving settings."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        oos_threshold: float | None = None,
        device: torch.device | None = None,
        reference: str | None = None,
    ) -> None:
        self.device = device or select_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.oos_threshold = oos_threshold
        self.reference = reference
        config = getattr(model, "config", None)
        id2label = getattr(config, "id2label", None) or {}
        self.labels = [id2label[index] for index in range(len(id2label))]

    @classmethod
    def from_folder(
        cls, model_dir: Path, *, reference: str | None = None, **overrides: Any
    ) -> TextClassifier:
        """Load a classifier folder written by the training code."""
        from shared.training.modeling import load_classifier

        serving = _read_serving_settings(model_dir)
        serving.update({key: value for key, value in overrides.items() if value is not None})
        model = load_classifier(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        return cls(
            model,
            tokenizer,
            max_length=int(serving.get("max_length", 128)),
            batch_size=int(serving.get("batch_size", 64)),
            oos_threshold=serving.get("oos_threshold"),
            reference=reference or str(model_dir),
        )

    @classmethod
    def from_registry(cls, reference: str, **overrides: Any) -> TextClassifier:
        """Load a registered version after verifying its checksums and labels."""
        from shared.registry import find_version, verify_version

        row = find_version(reference)
        model_dir = verify_version(row)
        return cls.from_folder(model_dir, reference=row.reference, **overrides)

    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Return class probabilities (n, C) and a truncation flag per text.

        The texts must be non-empty; `predict` filters them first.
        """
        # Cutting at max_length + 1 is enough to detect truncated input, and it
        # avoids tokenising a huge text whole (and the tokenizer's length warning).
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length + 1)[
            "input_ids"
        ]
        lengths = [min(len(ids), self.max_length) for ids in encoded]
        truncated = [len(ids) > self.max_length for ids in encoded]
        probabilities = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for batch in iter_length_buckets(lengths, self.batch_size):
            inputs = self.tokenizer(
                [texts[index] for index in batch],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            logits = self.model(**inputs).logits  # (B, C)
            probabilities[batch] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return probabilities, truncated

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Return raw logits (n, C) in input order; used to compare saved and reloaded models."""
        with torch.inference_mode():
            inputs = self.tokenizer(
                list(texts),
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            return self.model(**inputs).logits.float().cpu().numpy()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Classify each text; invalid items get an error instead of failing the batch."""
        results: list[Prediction | None] = [None] * len(texts)
        valid: list[int] = []
        for index, text in enumerate(texts):
            error = _validate_text(text)
            if error is None:
                valid.append(index)
            else:
                results[index] = Prediction(label=None, score=None, error=error)
        if valid:
            probabilities, truncated = self.predict_proba([texts[index] for index in valid])
            for row, index in enumerate(valid):
                results[index] = self._to_prediction(probabilities[row], truncated[row])
        return [result for result in results if result is not None]

    def _to_prediction(self, probabilities: np.ndarray, truncated: bool) -> Prediction:
        best = int(probabilities.argmax())
        score = float(probabilities[best])
        return Prediction(
            label=self.labels[best],
            score=score,
            distribution={
                label: float(p) for label, p in zip(self.labels, probabilities, strict=True)
            },
            truncated=truncated,
            out_of_scope=self.oos_threshold is not None and score < self.oos_threshold,
        )


def _validate_text(text: object) -> str | None:
    if not isinstance(text, str):
        return f"text must be a string, got {type(text).__name__}"
    if not text.strip():
        return EMPTY_TEXT_ERROR
    return None


def _read_serving_settings(model_dir: Path) -> dict[str, Any]:
    path = model_dir / CLASSIFIER_SETTINGS_FILE
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


_cache_lock = threading.Lock()
_cache: dict[tuple[int, str], TextClassifier] = {}


def load_text_classifier(reference: str) -> TextClassifier:
    """Return the process's classifier for a registry reference, loading it once.

    The reference is resolved to a version on every call (one indexed query), so
    a long-running worker serves a newly promoted version on its next batch and
    drops the one it replaces. The cache is keyed by process id, so a forked
    worker loads its own copy.
    """
    from shared.registry import find_version

    resolved = find_version(reference).reference
    name = resolved.rsplit("@", 1)[0]
    pid = os.getpid()
    with _cache_lock:
        classifier = _cache.get((pid, resolved))
        if classifier is None:
            for key in [k for k in _cache if k[0] == pid and k[1].rsplit("@", 1)[0] == name]:
                logger.info("classifier replaced old=%s new=%s", key[1], resolved)
                del _cache[key]
            classifier = _cache[(pid, resolved)] = TextClassifier.from_registry(resolved)
            logger.info("classifier loaded reference=%s", classifier.reference)
        return classifier


def clear_classifier_cache() -> None:
    """Forget every loaded classifier (after a promotion, for example)."""
    with _cache_lock:
        _cache.clear()
