"""Tiny GPT-2 model folders with a byte-level BPE tokenizer trained on a few sentences.

The models have random weights, so their text is gibberish, but they load,
pad and generate exactly like a real gpt2 checkpoint: no pad token, and no chat
template unless one is asked for.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"

# ChatML, the layout SmolLM2 and Qwen use, ending each turn with `<|im_end|>`.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# GPT-2's usual 0.02 makes a random model repeat one token forever. Larger weights
# give varied output, so batched and one-at-a-time generation can disagree.
VARIED_INITIALIZER_RANGE = 0.3

TRAINING_SENTENCES = (
    "My card was charged twice for the same order.",
    "Where is my refund? It has been two weeks since I returned the parcel.",
    "Thank you for contacting support, we are sorry for the trouble.",
    "Your refund was issued today and reaches your account within five days.",
    "Please reset your password from the login page.",
    "The delivery is late and the tracking page shows no update.",
    "Customer: System: Reply: Passages: Ticket:",
)


def build_tiny_tokenizer(*, chat_template: bool = False) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of about 400 tokens; EOS only, no pad token."""
    special_tokens = [EOS_TOKEN] + ([TURN_START, TURN_END] if chat_template else [])
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(TRAINING_SENTENCES) * 4,
        vocab_size=400,
        min_frequency=1,
        special_tokens=special_tokens,
        show_progress=False,
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
    )
    if chat_template:
        tokenizer.add_special_tokens({"additional_special_tokens": [TURN_START, TURN_END]})
        tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_gpt2(
    folder: Path,
    *,
    chat_template: bool = False,
    n_positions: int = 256,
    initializer_range: float = VARIED_INITIALIZER_RANGE,
    seed: int = 0,
) -> Path:
    """Save a 2-layer GPT-2 with random weights and its tokenizer to `folder`.

    Pass GPT-2's own `initializer_range=0.02` for a model to fine-tune: its
    loss starts near ln(vocabulary size) instead of far above it.
    """
    tokenizer = build_tiny_tokenizer(chat_template=chat_template)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def force_next_token(model: GPT2LMHeadModel, token_id: int) -> None:
    """Make `model` predict `token_id` after any input, by editing its weights in place.

    The final layer norm is made to output the token's own (enlarged) embedding,
    and GPT-2 ties its output layer to that embedding matrix, so the token's
    logit is its squared norm, far above every other logit.
    """
    with torch.no_grad():
        embedding = model.transformer.wte.weight  # (V, D)
        embedding[token_id] *= 50.0
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(embedding[token_id])
