"""Token-by-token text from `generate`, run in a background thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from shared.errors import GenerationError

__all__ = ["STREAM_THREAD_NAME", "iter_streamed_text"]

logger = logging.getLogger(__name__)

STREAM_THREAD_NAME = "diptych-generation-stream"


class _StopRequested(StoppingCriteria):
    """Ends generation after the current step once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def iter_streamed_text(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    *,
    inputs: dict[str, torch.Tensor],
    generation_config: GenerationConfig,
) -> Generator[str, None, None]:
    """Yield the decoded text of one prompt's new tokens as they are generated.

    The generation thread starts on the first `next()`. Closing the iterator
    early, or dropping it, stops generation after the current step and joins
    the thread before `close()` returns.

    Raises:
        GenerationError: If `generate` failed in the thread.
    """
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop_event = threading.Event()
    failures: list[Exception] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                model.generate(
                    **inputs,
                    generation_config=generation_config,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_StopRequested(stop_event)]),
                )
        except Exception as exc:
            failures.append(exc)
            # `generate` calls `streamer.end()` only when it returns, and the
            # consumer waits on the streamer's queue until that end signal.
            streamer.end()

    thread = threading.Thread(target=run, name=STREAM_THREAD_NAME, daemon=True)
    thread.start()
    try:
        yield from _skip_leading_whitespace(streamer)
    finally:
        stop_event.set()
        thread.join()
    if failures:
        raise GenerationError(
            f"Generation failed in the streaming thread: {failures[0]}"
        ) from failures[0]


def _skip_leading_whitespace(pieces: Iterator[str]) -> Iterator[str]:
    # `generate` strips the reply, so the stream drops the same leading whitespace.
    started = False
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        if piece:
            yield piece
