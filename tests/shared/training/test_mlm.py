"""Continued masked-LM pretraining writes an encoder folder that classifiers accept as a base."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors import safe_open

from pipelines.datasets import read_phrasebank
from shared.data import DatasetSplits
from shared.errors import DataError
from shared.training.classifier import train_classifier
from shared.training.config import ClassifierTrainingConfig, MlmTrainingConfig
from shared.training.mlm import MlmResult, train_mlm
from tests.conftest import find_data_dir

N_TEXTS = 60
# 60 texts with eval_fraction 0.2: 12 are held out, and one epoch over the other 48
# at batch 16 is three optimiser steps.
TINY_MLM = MlmTrainingConfig(epochs=1, batch_size=16, max_length=32, eval_fraction=0.2, seed=3)


@pytest.fixture(scope="module")
def _mlm_run(tmp_path_factory: pytest.TempPathFactory) -> MlmResult:
    """One tiny MLM run on the first 60 Financial PhraseBank sentences, shared by the module."""
    data_dir = find_data_dir()
    if data_dir is None:
        pytest.skip("public data sets not found: set DIPTYCH_DATA_DIR")
    texts = [example.text for example in read_phrasebank(data_dir)[:N_TEXTS]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIPTYCH_HOME", str(tmp_path_factory.mktemp("mlm-home")))
        return train_mlm(texts, TINY_MLM, output_dir=tmp_path_factory.mktemp("mlm-run"))


def test_mlm_writes_safetensors_encoder(_mlm_run: MlmResult) -> None:
    """The folder contains the encoder as safetensors, without the masked-LM head."""
    weights = _mlm_run.model_dir / "model.safetensors"

    with safe_open(str(weights), framework="pt") as handle:
        keys = list(handle.keys())

    assert keys, "model.safetensors has no tensors"
    assert not [key for key in keys if key.startswith("cls.")], "masked-LM head was saved"
    assert any("embeddings.word_embeddings" in key for key in keys)


def test_mlm_writes_no_pickle_files(_mlm_run: MlmResult) -> None:
    """Nothing in the encoder folder is a pickle, so the registry can store it."""
    pickles = [
        path.name
        for path in _mlm_run.model_dir.rglob("*")
        if path.suffix in {".bin", ".pt", ".pkl", ".pth"}
    ]

    assert pickles == []


def test_mlm_writes_encoder_config(_mlm_run: MlmResult) -> None:
    """config.json describes a plain encoder, not a masked-LM model."""
    config = json.loads((_mlm_run.model_dir / "config.json").read_text(encoding="utf-8"))

    assert config["model_type"] == "bert"
    assert config["architectures"] == ["BertModel"]


def test_mlm_writes_tokenizer(_mlm_run: MlmResult) -> None:
    """The base model's tokenizer is saved beside the weights."""
    assert (_mlm_run.model_dir / "tokenizer.json").is_file()
    assert (_mlm_run.model_dir / "tokenizer_config.json").is_file()


@pytest.mark.parametrize(
    "name",
    [
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
    ],
)
def test_mlm_copies_sentence_transformers_files(_mlm_run: MlmResult, name: str) -> None:
    """The pooling files of the base model are copied, so the encoder pools as before."""
    assert (_mlm_run.model_dir / name).is_file()


def test_load_encoder_in_sentence_transformers(_mlm_run: MlmResult) -> None:
    """sentence-transformers loads the folder with mean pooling and unit-length vectors."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(_mlm_run.model_dir), device="cpu")

    vectors = encoder.encode(["Operating profit rose to EUR 13.1 mn."])

    assert vectors.shape == (1, 384)
    assert math.isclose(float((vectors**2).sum()), 1.0, abs_tol=1e-4)


def test_mlm_reports_finite_perplexities(_mlm_run: MlmResult) -> None:
    """Held-out perplexity is measured before and after training, and both are finite."""
    before, after = _mlm_run.perplexity_before, _mlm_run.perplexity_after

    assert before is not None
    assert after is not None
    assert math.isfinite(before)
    assert math.isfinite(after)
    assert before >= 1.0
    assert after >= 1.0


def test_mlm_counts_texts(_mlm_run: MlmResult) -> None:
    """The result records every text used, training and held out together."""
    assert _mlm_run.n_texts == N_TEXTS


def test_encoder_serves_as_classifier_base(
    _mlm_run: MlmResult, banking_subset: DatasetSplits, tmp_path: Path
) -> None:
    """A `head` classifier trains on the adapted encoder folder and beats chance.

    Given the encoder written by the tiny MLM run.
    When a `head` classifier is trained on five Banking77 intents with it as the base.
    Then the run saves a model folder and scores above chance (0.2) on the test texts.
    """
    config = ClassifierTrainingConfig(
        method="head", base_model=str(_mlm_run.model_dir), max_length=32, seed=1
    )

    trained = train_classifier(banking_subset, config, output_dir=tmp_path / "classifier")

    assert (trained.model_dir / "model.safetensors").is_file()
    assert trained.test_report is not None
    assert trained.test_report.accuracy > 0.5


@pytest.mark.parametrize(
    "texts",
    [
        [],
        [f"Operating profit rose by {index} percent." for index in range(9)],
        [f"Net sales fell {index} percent." for index in range(9)] + ["", "   ", "\n"],
    ],
    ids=["none", "nine", "nine-and-blanks"],
)
def test_reject_fewer_than_ten_texts(texts: list[str], tmp_path: Path) -> None:
    """Fewer than 10 non-empty texts raise DataError before any model is loaded."""
    with pytest.raises(DataError, match="at least 10 non-empty texts"):
        train_mlm(texts, TINY_MLM, output_dir=tmp_path / "run")
