"""Fixtures for generation: tiny GPT-2 folders, and the bundled drafter converted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.basemodels import default_drafter
from shared.generation import TextGenerator
from shared.settings import Settings
from tests.shared.generation.tiny_models import build_tiny_gpt2


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 folder like gpt2's: no pad token, no chat template, 256 positions."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_chat_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 folder whose tokenizer has a ChatML template ending turns with `<|im_end|>`."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-chat-gpt2"), chat_template=True)


@pytest.fixture
def tiny_generator(tiny_gpt2_dir: Path) -> TextGenerator:
    """A fresh generator on the tiny GPT-2, so a test may change its model."""
    return TextGenerator.from_folder(tiny_gpt2_dir, device="cpu")


@pytest.fixture(scope="session")
def drafter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled SmolLM2 drafter, converted from GGUF once per session.

    The conversion takes about 20 seconds on a 2-core CPU. It writes into a
    session home of its own, because every test gets a fresh DIPTYCH_HOME.
    """
    settings = Settings(home=tmp_path_factory.mktemp("drafter-home"))
    return default_drafter(settings).path


@pytest.fixture(scope="session")
def _drafter_generator(drafter_dir: Path) -> TextGenerator:
    return TextGenerator.from_folder(drafter_dir, device="cpu")


@pytest.fixture
def drafter(_drafter_generator: TextGenerator) -> TextGenerator:
    """The drafter generator, loaded once per session; tests must not change its model."""
    return _drafter_generator
