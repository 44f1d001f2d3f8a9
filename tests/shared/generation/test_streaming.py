"""Streaming replies: same text as `generate`, early stops and errors from the thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch

from shared.errors import GenerationError
from shared.generation import TextGenerator
from shared.generation._streaming import STREAM_THREAD_NAME

PROMPT = "Where is my refund? It has been two weeks since I returned the parcel."


def _stream_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == STREAM_THREAD_NAME]


def _count_and_slow_forward(generator: TextGenerator, *, seconds: float) -> list[int]:
    """Count the model's forward passes and make each take at least `seconds`."""
    calls: list[int] = []

    def hook(module: Any, args: Any, output: Any) -> None:
        calls.append(1)
        time.sleep(seconds)

    generator.model.register_forward_hook(hook)
    return calls


def test_stream_joined_matches_generate(tiny_generator: TextGenerator) -> None:
    """With greedy decoding, the streamed pieces add up to `generate`'s text."""
    expected = tiny_generator.generate([PROMPT], max_new_tokens=24)[0].text

    pieces = list(tiny_generator.stream(PROMPT, max_new_tokens=24))

    assert len(pieces) > 1
    assert "".join(pieces).strip() == expected
    assert _stream_threads() == []


def test_stream_joined_matches_generate_drafter(drafter: TextGenerator) -> None:
    prompt = drafter.build_prompt("Answer in one short sentence.", "What is the capital of France?")
    expected = drafter.generate([prompt], max_new_tokens=16)[0].text

    pieces = list(drafter.stream(prompt, max_new_tokens=16))

    assert "".join(pieces).strip() == expected
    assert "Paris" in expected


def test_stream_first_piece_has_no_leading_whitespace(tiny_generator: TextGenerator) -> None:
    pieces = list(tiny_generator.stream(PROMPT, max_new_tokens=24))

    assert pieces[0] == pieces[0].lstrip()
    assert pieces[0]


def test_stream_close_stops_generation_and_joins_thread(tiny_generator: TextGenerator) -> None:
    """Closing the iterator after one piece stops generation long before the token limit."""
    calls = _count_and_slow_forward(tiny_generator, seconds=0.005)
    pieces = tiny_generator.stream(PROMPT, max_new_tokens=200)

    first = next(pieces)
    pieces.close()  # type: ignore[attr-defined]

    assert first
    assert _stream_threads() == []
    assert len(calls) < 100


def test_stream_break_in_loop_joins_thread(tiny_generator: TextGenerator) -> None:
    """Leaving a for-loop early drops the iterator, which stops and joins the thread."""
    calls = _count_and_slow_forward(tiny_generator, seconds=0.005)

    for _piece in tiny_generator.stream(PROMPT, max_new_tokens=200):
        break

    assert _stream_threads() == []
    assert len(calls) < 100


def test_stream_starts_no_thread_before_iteration(tiny_generator: TextGenerator) -> None:
    pieces = tiny_generator.stream(PROMPT, max_new_tokens=8)

    assert _stream_threads() == []
    pieces.close()  # type: ignore[attr-defined]


def test_stream_reraises_thread_failure(tiny_generator: TextGenerator) -> None:
    """An exception inside `generate` reaches the consumer as a GenerationError."""

    def fail(**kwargs: Any) -> Any:
        raise RuntimeError("device lost")

    tiny_generator.model.generate = fail

    with pytest.raises(GenerationError, match="device lost") as caught:
        list(tiny_generator.stream(PROMPT, max_new_tokens=8))

    assert isinstance(caught.value.__cause__, RuntimeError)
    assert _stream_threads() == []


def test_stream_validates_before_iteration(tiny_generator: TextGenerator) -> None:
    """Bad arguments fail at the call, not at the first `next()`."""
    with pytest.raises(ValueError, match="`prompt`"):
        tiny_generator.stream("")
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_generator.stream(PROMPT, max_new_tokens=0)
    with pytest.raises(GenerationError, match="context"):
        tiny_generator.stream("Where is my refund? " * 60, max_new_tokens=16)


def test_stream_uses_greedy_by_default(tiny_generator: TextGenerator) -> None:
    """Two streams of one prompt give the same text, whatever the random state."""
    torch.manual_seed(1)
    first = "".join(tiny_generator.stream(PROMPT, max_new_tokens=16))
    torch.manual_seed(2)
    second = "".join(tiny_generator.stream(PROMPT, max_new_tokens=16))

    assert first == second
