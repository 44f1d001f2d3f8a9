"""Pad tokens, stop tokens and context sizes read from tokenizers and configs."""

from __future__ import annotations

import pytest
from transformers import GPT2Config, PretrainedConfig

from shared.generation import ensure_pad_token, find_context_length, find_stop_token_ids
from tests.shared.generation.tiny_models import EOS_TOKEN, TURN_END, build_tiny_tokenizer


def test_ensure_pad_token_uses_eos() -> None:
    """A tokenizer without a pad token pads with EOS, and its vocabulary does not grow."""
    tokenizer = build_tiny_tokenizer()
    size_before = len(tokenizer)
    assert tokenizer.pad_token is None

    ensure_pad_token(tokenizer)

    assert tokenizer.pad_token == EOS_TOKEN
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert len(tokenizer) == size_before


def test_ensure_pad_token_keeps_existing_pad() -> None:
    tokenizer = build_tiny_tokenizer(chat_template=True)
    tokenizer.pad_token = TURN_END

    ensure_pad_token(tokenizer)

    assert tokenizer.pad_token == TURN_END


def test_ensure_pad_token_rejects_tokenizer_without_eos() -> None:
    tokenizer = build_tiny_tokenizer()
    tokenizer.eos_token = None

    with pytest.raises(ValueError, match="neither a pad token nor an EOS token"):
        ensure_pad_token(tokenizer)


def test_find_stop_token_ids_without_template_is_eos() -> None:
    tokenizer = build_tiny_tokenizer()

    assert find_stop_token_ids(tokenizer, eos_token_id=None) == [tokenizer.eos_token_id]


def test_find_stop_token_ids_adds_end_of_turn() -> None:
    """A ChatML template's `<|im_end|>` ends a reply as well as the EOS token."""
    tokenizer = build_tiny_tokenizer(chat_template=True)

    stop_ids = find_stop_token_ids(tokenizer, eos_token_id=[tokenizer.eos_token_id])

    assert stop_ids == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(TURN_END)]


def test_find_stop_token_ids_adds_generation_config_ids() -> None:
    """EOS ids from the generation config are kept, without duplicates."""
    tokenizer = build_tiny_tokenizer()

    stop_ids = find_stop_token_ids(tokenizer, eos_token_id=[7, tokenizer.eos_token_id, 7])

    assert stop_ids == [tokenizer.eos_token_id, 7]


def test_find_context_length_ignores_unset_tokenizer_limit() -> None:
    """transformers' 1e30 placeholder for `model_max_length` is not a real limit."""
    tokenizer = build_tiny_tokenizer()
    config = GPT2Config(n_positions=256)

    assert find_context_length(config, tokenizer) == 256


def test_find_context_length_takes_smaller_real_limit() -> None:
    tokenizer = build_tiny_tokenizer()
    tokenizer.model_max_length = 128

    assert find_context_length(GPT2Config(n_positions=256), tokenizer) == 128


def test_find_context_length_is_none_without_any_limit() -> None:
    """A config without `max_position_embeddings` (e.g. a rotary model's) and an unset
    tokenizer limit leave the context size unknown."""
    tokenizer = build_tiny_tokenizer()

    assert find_context_length(PretrainedConfig(), tokenizer) is None
