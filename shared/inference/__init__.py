"""Serving trained models: batching, devices, text classification."""

from shared.inference.batching import iter_length_buckets
from shared.inference.classifier import (
    CLASSIFIER_SETTINGS_FILE,
    Prediction,
    TextClassifier,
    clear_classifier_cache,
    load_text_classifier,
)
from shared.inference.device import select_device

__all__ = [
    "CLASSIFIER_SETTINGS_FILE",
    "Prediction",
    "TextClassifier",
    "clear_classifier_cache",
    "iter_length_buckets",
    "load_text_classifier",
    "select_device",
]
