"""Drafting: the causal LM writes a reply from the masked ticket and its passages.

The prompt holds the ticket's intent, the numbered passages and the masked
customer text; the passages are trimmed first when the prompt would not fit
the model's context. A grounding check compares the draft with its passages;
a draft that fails it, or any drafter error, falls back to the best passage
with its known slots filled, marked as such.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.support.knowledge import fill_slots
from services.support.store import PassageRecord
from shared.errors import DiptychError, ModelVersionNotFoundError
from shared.generation import FittedPrompt, TextGenerator, load_generator
from shared.retrieval import TextEmbedder, load_text_embedder
from shared.settings import get_settings

__all__ = [
    "DRAFT_INSTRUCTIONS",
    "DraftResult",
    "Grounding",
    "build_draft_prompt",
    "build_ticket_block",
    "check_grounding",
    "draft_replies",
    "load_drafter",
    "reply_budget",
    "stream_reply",
]

logger = logging.getLogger(__name__)

DRAFT_INSTRUCTIONS = (
    "You are a customer support agent. Write the reply to the customer's message, "
    "using only the facts in the numbered passages. Keep placeholders such as "
    "{{Order Number}} exactly as written; never invent names, numbers or links."
)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_CITATION = re.compile(r"\[(\d{1,2})\]")
_ORDER_NUMBER = re.compile(
    r"\b(?:order|ord)[\s#:.-]*(?:number|no\.?)?[\s#:.-]*([A-Z0-9-]{4,20}\d)", re.I
)


@dataclass(frozen=True)
class Grounding:
    """The support a draft finds in its passages.

    Attributes:
        score: Mean over the draft's sentences of the best cosine similarity to a passage.
        cited: Ranks of the passages the draft draws on: cited ``[n]`` markers,
            plus passages that are the best match of at least one sentence.
    """

    score: float
    cited: tuple[int, ...]


@dataclass
class DraftResult:
    """A reply ready to store."""

    text: str
    kind: str
    model: str
    citations: list[int]
    grounding: float | None
    fallback_reason: str | None = None
    n_new_tokens: int = 0
    finished: bool = True
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def load_drafter() -> TextGenerator:
    """Return this process's drafter: the production `support-drafter`, else the base model."""
    settings = get_settings()
    try:
        return load_generator(settings.support.drafter_model)
    except ModelVersionNotFoundError:
        logger.info(
            "drafter not registered reference=%s; drafting with the base model %s",
            settings.support.drafter_model,
            settings.models.drafter,
        )
        return load_generator(settings.models.drafter)


def build_ticket_block(text: str, intent: str | None) -> str:
    """Return the ticket part of the drafter prompt."""
    header = f"Intent: {intent}" if intent else "Intent: unknown"
    return f"{header}\nCustomer message:\n{text}"


def reply_budget(drafter: TextGenerator) -> int:
    """Return the reply's token limit: the setting, or half the context of a small model."""
    limit = get_settings().support.max_new_tokens
    if drafter.context_length is not None:
        limit = min(limit, drafter.context_length // 2)
    return limit


def build_draft_prompt(
    drafter: TextGenerator, text: str, intent: str | None, passages: Sequence[PassageRecord]
) -> FittedPrompt:
    """Fit the drafting prompt into `support.max_prompt_tokens` and the model's context.

    The drafter is fine-tuned on prompts built the same way, so serving and
    training see the same layout and budget.
    """
    max_new_tokens = reply_budget(drafter)
    limit = get_settings().support.max_prompt_tokens + max_new_tokens
    if drafter.context_length is not None:
        limit = min(limit, drafter.context_length)
    return drafter.fit_prompt(
        DRAFT_INSTRUCTIONS,
        build_ticket_block(text, intent),
        [passage.text for passage in passages],
        max_new_tokens=max_new_tokens,
        context_limit=limit,
    )


def draft_replies(
    tickets: Sequence[tuple[str, str | None, Sequence[PassageRecord]]],
    *,
    drafter: TextGenerator | None = None,
    embedder: TextEmbedder | None = None,
    slot_values: Mapping[str, str] | None = None,
) -> list[DraftResult]:
    """Draft replies for several tickets in one batched generation.

    Args:
        tickets: (masked text, intent, passages) per ticket.
        drafter: The causal LM; by default `load_drafter()`.
        embedder: Sentence embedder of the grounding check.
        slot_values: Known slot values for the fallback; by default the settings'.

    Returns:
        One result per ticket. A drafter failure or an ungrounded draft gives a
        fallback result instead of an error.
    """
    embedder = embedder or load_text_embedder(None)
    try:
        drafter = drafter or load_drafter()
        max_new_tokens = reply_budget(drafter)
        prompts = [
            build_draft_prompt(drafter, text, intent, passages)
            for text, intent, passages in tickets
        ]
        generations = drafter.generate(
            [prompt.text for prompt in prompts], max_new_tokens=max_new_tokens
        )
    except (DiptychError, ValueError) as exc:
        logger.error("drafter failed tickets=%d error=%s", len(tickets), exc)
        return [
            _fallback(text, passages, reason=f"drafter error: {exc}", slot_values=slot_values)
            for text, _intent, passages in tickets
        ]
    results = []
    for (text, _intent, passages), prompt, generation in zip(
        tickets, prompts, generations, strict=True
    ):
        used = [passages[index] for index in prompt.passages_used]
        result = _judge(
            generation, used, ticket=text, model=drafter.reference or "", embedder=embedder
        )
        if result.kind == "fallback" or not generation.text.strip():
            result = (
                _fallback(text, passages, reason=result.fallback_reason, slot_values=slot_values)
                if passages
                else result
            )
        results.append(result)
    return results


def _judge(
    generation: Any,
    passages: Sequence[PassageRecord],
    *,
    ticket: str,
    model: str,
    embedder: TextEmbedder,
) -> DraftResult:
    text = generation.text.strip()
    reason = _find_defect(text, finished=generation.finished) or _find_unsupported_number(
        text, ticket=ticket, passages=passages
    )
    grounding = check_grounding(text, passages, embedder=embedder) if text else Grounding(0.0, ())
    threshold = get_settings().support.grounding_threshold
    if reason is None and passages and grounding.score < threshold:
        reason = f"grounding {grounding.score:.2f} below {threshold:.2f}"
    return DraftResult(
        text=text,
        kind="fallback" if reason else "generated",
        model=model,
        citations=list(grounding.cited),
        grounding=grounding.score,
        fallback_reason=reason,
        n_new_tokens=generation.n_new_tokens,
        finished=generation.finished,
        seconds=generation.seconds,
    )


def _find_defect(text: str, *, finished: bool) -> str | None:
    if len(text) < 2:
        return "empty draft"
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    if len(sentences) >= 4 and len(set(sentences)) <= len(sentences) // 2:
        return "draft repeats itself"
    if not finished and len(sentences) >= 2 and sentences[-1] == sentences[-2]:
        return "draft hit the token limit while repeating"
    return None


_NUMBER = re.compile(r"\d[\d-]{3,}\d")


def _find_unsupported_number(
    text: str, *, ticket: str, passages: Sequence[PassageRecord]
) -> str | None:
    """Name a number of 5+ characters in the draft that neither ticket nor passages hold.

    Embedding similarity cannot tell one order number from another, so a
    draft that quotes another customer's number would pass the grounding check.
    """
    sources = ticket + "\n" + "\n".join(passage.text for passage in passages)
    for number in _NUMBER.findall(text):
        if number not in sources:
            return f"draft states a number ({number}) found in neither the ticket nor the passages"
    return None


def check_grounding(
    text: str, passages: Sequence[PassageRecord], *, embedder: TextEmbedder
) -> Grounding:
    """Compare a draft with its passages sentence by sentence.

    Each sentence is matched to its most similar passage by embedding cosine;
    the score is the mean of those best similarities, so a draft of invented
    facts scores low even when one sentence copies a passage.
    """
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) > 3]
    if not sentences or not passages:
        return Grounding(score=0.0, cited=())
    vectors = embedder.encode(sentences + [passage.text for passage in passages])
    similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T  # (S, P)
    best = similarity.argmax(axis=1)
    cited = {passages[int(index)].rank for index in best}
    cited |= {
        passages[n - 1].rank
        for n in (int(match) for match in _CITATION.findall(text))
        if 1 <= n <= len(passages)
    }
    return Grounding(score=float(np.mean(similarity.max(axis=1))), cited=tuple(sorted(cited)))


def _fallback(
    text: str,
    passages: Sequence[PassageRecord],
    *,
    reason: str | None,
    slot_values: Mapping[str, str] | None,
) -> DraftResult:
    values = dict(get_settings().support.slot_values if slot_values is None else slot_values)
    if match := _ORDER_NUMBER.search(text):
        values.setdefault("Order Number", match.group(1))
    if not passages:
        return DraftResult(
            text="",
            kind="fallback",
            model="",
            citations=[],
            grounding=None,
            fallback_reason=(reason or "") + "; no passage to fall back on",
        )
    best = passages[0]
    filled, unfilled = fill_slots(best.text, values)
    return DraftResult(
        text=filled,
        kind="fallback",
        model="",
        citations=[best.rank],
        grounding=1.0,
        fallback_reason=reason,
        details={"unfilled_slots": list(unfilled)},
    )


def stream_reply(
    text: str,
    intent: str | None,
    passages: Sequence[PassageRecord],
    *,
    on_piece: Callable[[str], None],
    drafter: TextGenerator | None = None,
    embedder: TextEmbedder | None = None,
) -> DraftResult:
    """Draft one reply, handing each text piece to `on_piece` as the drafter writes it.

    Returns:
        The judged draft, exactly as `draft_replies` would judge it: a failed
        grounding check or a drafter error gives the fallback.
    """
    embedder = embedder or load_text_embedder(None)
    started = time.perf_counter()
    try:
        drafter = drafter or load_drafter()
        max_new_tokens = reply_budget(drafter)
        prompt = build_draft_prompt(drafter, text, intent, passages)
        pieces = []
        for piece in drafter.stream(prompt.text, max_new_tokens=max_new_tokens):
            pieces.append(piece)
            on_piece(piece)
    except (DiptychError, ValueError) as exc:
        logger.error("drafter failed while streaming error=%s", exc)
        return _fallback(text, passages, reason=f"drafter error: {exc}", slot_values=None)
    joined = "".join(pieces).strip()
    n_new_tokens = drafter.count_tokens(joined)
    generation = _StreamedGeneration(
        text=joined,
        n_new_tokens=n_new_tokens,
        finished=n_new_tokens < max_new_tokens,
        seconds=time.perf_counter() - started,
    )
    used = [passages[index] for index in prompt.passages_used]
    result = _judge(generation, used, ticket=text, model=drafter.reference or "", embedder=embedder)
    if result.kind == "fallback" and passages:
        return _fallback(text, passages, reason=result.fallback_reason, slot_values=None)
    return result


@dataclass(frozen=True)
class _StreamedGeneration:
    text: str
    n_new_tokens: int
    finished: bool
    seconds: float
