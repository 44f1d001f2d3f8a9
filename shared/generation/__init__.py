"""Causal-LM generation: prompts that fit the context, batched and streamed replies."""

from shared.generation._tokens import (
    encode_prompt,
    ensure_pad_token,
    find_context_length,
    find_stop_token_ids,
)
from shared.generation.generator import (
    Generation,
    TextGenerator,
    clear_generator_cache,
    load_generator,
)
from shared.generation.prompts import (
    FittedPrompt,
    TicketTruncation,
    build_prompt,
    fit_prompt,
    format_user_message,
)

__all__ = [
    "FittedPrompt",
    "Generation",
    "TextGenerator",
    "TicketTruncation",
    "build_prompt",
    "clear_generator_cache",
    "encode_prompt",
    "ensure_pad_token",
    "find_context_length",
    "find_stop_token_ids",
    "fit_prompt",
    "format_user_message",
    "load_generator",
]
