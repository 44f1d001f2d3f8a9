"""Tokenizer facts that generation and causal-LM fine-tuning must agree on.

Both sides encode a prompt the same way (`encode_prompt`) and pad with the same
token (`ensure_pad_token`), so a model fine-tuned on prompts from
`build_prompt` receives at serving time exactly the token ids it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PretrainedConfig, PreTrainedTokenizerBase

__all__ = [
    "END_OF_TURN_TOKENS",
    "encode_prompt",
    "ensure_pad_token",
    "find_context_length",
    "find_stop_token_ids",
]

# Chat templates close each turn with one of these tokens: `<|im_end|>` is
# ChatML (SmolLM2, Qwen), `<|eot_id|>` Llama 3, `<end_of_turn>` Gemma and
# `<|end|>` Phi-3. A model that ends its reply with one may never emit its EOS token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")

# transformers stores `model_max_length = int(1e30)` when a tokenizer declares no
# limit, so any value this large means "unknown", not a real context size.
_UNSET_MODEL_MAX_LENGTH = 10**9


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Use the EOS token for padding when the tokenizer has no pad token.

    The embedding matrix is never resized: padded positions are masked out by
    the attention mask and, in training, by the `-100` labels, so reusing EOS
    needs no new trained row.

    Raises:
        ValueError: If the tokenizer has neither a pad token nor an EOS token.
    """
    if tokenizer.pad_token is not None:
        return
    if tokenizer.eos_token is None:
        raise ValueError(
            f"The tokenizer {type(tokenizer).__name__} has neither a pad token nor an EOS "
            "token, so prompts cannot be padded and replies cannot end. Set "
            "`tokenizer.eos_token` and save the tokenizer beside the model."
        )
    tokenizer.pad_token = tokenizer.eos_token


def encode_prompt(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Return the token ids of a prompt string as the model reads it.

    A prompt rendered by a chat template already contains the template's special
    tokens as text, so the tokenizer adds none of its own. Without a template
    the tokenizer adds its usual ones (a BOS token, for models that use one).
    """
    add_special_tokens = not tokenizer.chat_template
    ids: list[int] = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
    return ids


def find_stop_token_ids(
    tokenizer: PreTrainedTokenizerBase, *, eos_token_id: int | Sequence[int] | None
) -> list[int]:
    """Return the token ids that end a reply, in a stable order.

    Args:
        tokenizer: The model's tokenizer.
        eos_token_id: The EOS id or ids of the model's generation config, if any.

    Returns:
        The tokenizer's EOS id, the generation config's EOS ids, and the chat
        template's end-of-turn token when the template uses one.
    """
    candidates: list[int] = []
    if tokenizer.eos_token_id is not None:
        candidates.append(int(tokenizer.eos_token_id))
    if isinstance(eos_token_id, int):
        candidates.append(eos_token_id)
    elif eos_token_id is not None:
        candidates.extend(int(token_id) for token_id in eos_token_id)
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else ""
    vocabulary = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in template and token in vocabulary:
            candidates.append(int(vocabulary[token]))
    return list(dict.fromkeys(candidates))


def find_context_length(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """Return the model's context size in tokens, or None when neither source states one.

    Both `config.max_position_embeddings` (GPT-2 calls it `n_positions`) and
    `tokenizer.model_max_length` are considered, and the smaller real one wins.
    """
    limits: list[int] = []
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    tokenizer_limit = tokenizer.model_max_length
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < _UNSET_MODEL_MAX_LENGTH:
        limits.append(tokenizer_limit)
    return min(limits) if limits else None
