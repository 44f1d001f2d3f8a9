"""Drafting: the causal LM writes a reply from the masked ticket and its passages.

The prompt holds the ticket's intent, the numbered passages and the masked
customer text; the passages are trimmed first when the prompt would not fit
the model's context. A grounding check compares the draft with the passages in
its prompt. A draft that passes keeps kind ``generated``. A draft that fails,
or any drafter error, falls back to the best passage (kind ``fallback``). With
no passage at all there is nothing to fall back to: the result has kind
``no_answer``, no text, and sends the ticket to the human queue. Slots are
filled in every reply from the settings and from the ticket itself.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from services.support.errors import DraftCancelledError
from services.support.knowledge import fill_slots, find_ticket_slot_values
from services.support.models import DRAFT_KIND_FALLBACK, DRAFT_KIND_GENERATED, DRAFT_KIND_NO_ANSWER
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
    "build_slot_values",
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
        slot_values: Known slot values; by default the settings'. Values the
            ticket states itself (its order number) take precedence.

    Returns:
        One result per ticket. A drafter failure or an ungrounded draft gives a
        ``fallback`` result, or a ``no_answer`` one when the ticket has no
        passage, instead of an error.
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
        judged = _judge(
            generation, used, ticket=text, model=drafter.reference or "", embedder=embedder
        )
        results.append(_settle(judged, ticket=text, passages=passages, slot_values=slot_values))
    return results


def _judge(
    generation: Any,
    passages: Sequence[PassageRecord],
    *,
    ticket: str,
    model: str,
    embedder: TextEmbedder,
) -> DraftResult:
    """Check a draft against the passages its prompt held.

    Returns:
        The draft with kind ``generated`` when it passes, else with kind
        ``fallback`` and the reason it failed, for `_settle` to replace.
    """
    text = generation.text.strip()
    reason = _find_defect(text, finished=generation.finished) or _find_unsupported_number(
        text, ticket=ticket, passages=passages
    )
    grounding = check_grounding(text, passages, embedder=embedder) if text else Grounding(0.0, ())
    threshold = get_settings().support.grounding_threshold
    if reason is None and not passages:
        # A draft written without passages has nothing to be grounded in, whatever
        # the threshold, so it is never sent as if it were checked.
        reason = "no passage in the prompt to check the draft against"
    elif reason is None and grounding.score < threshold:
        reason = f"grounding {grounding.score:.2f} below {threshold:.2f}"
    return DraftResult(
        text=text,
        kind=DRAFT_KIND_FALLBACK if reason else DRAFT_KIND_GENERATED,
        model=model,
        citations=list(grounding.cited),
        grounding=grounding.score,
        fallback_reason=reason,
        n_new_tokens=generation.n_new_tokens,
        finished=generation.finished,
        seconds=generation.seconds,
    )


def _settle(
    judged: DraftResult,
    *,
    ticket: str,
    passages: Sequence[PassageRecord],
    slot_values: Mapping[str, str] | None,
) -> DraftResult:
    """Fill the slots of a draft that passed, or replace a failed one."""
    if judged.kind != DRAFT_KIND_GENERATED:
        return _fallback(
            ticket,
            passages,
            reason=judged.fallback_reason,
            slot_values=slot_values,
            rejected=judged,
        )
    filled, unfilled = fill_slots(judged.text, build_slot_values(ticket, slot_values))
    return replace(judged, text=filled, details={"unfilled_slots": list(unfilled)})


def build_slot_values(ticket: str, slot_values: Mapping[str, str] | None) -> dict[str, str]:
    """Return the slot values for a reply to `ticket`.

    The settings' values (or `slot_values`) come first. Values the ticket states
    itself, such as its order number, replace them because they are specific
    to this customer.
    """
    values = dict(get_settings().support.slot_values if slot_values is None else slot_values)
    values.update(find_ticket_slot_values(ticket))
    return values


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
    ticket: str,
    passages: Sequence[PassageRecord],
    *,
    reason: str | None,
    slot_values: Mapping[str, str] | None,
    rejected: DraftResult | None = None,
) -> DraftResult:
    """Return the best passage with its slots filled, or a ``no_answer`` result.

    Args:
        ticket: The masked ticket text, read for slot values.
        passages: Every passage retrieved for the ticket, best first.
        reason: Why the draft was not used.
        slot_values: As in `draft_replies`.
        rejected: The judged draft that failed, if the drafter wrote one.
    """
    # The drafter's work is kept even when its text is not used: the tokens and
    # seconds it spent, and the rejected text for the agent and for training.
    spent: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if rejected is not None:
        spent = {
            "n_new_tokens": rejected.n_new_tokens,
            "finished": rejected.finished,
            "seconds": rejected.seconds,
        }
        if rejected.text:
            details = {"rejected_text": rejected.text, "rejected_model": rejected.model}
    if not passages:
        return DraftResult(
            text="",
            kind=DRAFT_KIND_NO_ANSWER,
            model=rejected.model if rejected else "",
            citations=[],
            grounding=None,
            fallback_reason=(
                f"{reason or 'no draft'}; no passage was retrieved to fall back on, "
                "so an agent must write the reply"
            ),
            details=details,
            **spent,
        )
    best = passages[0]
    filled, unfilled = fill_slots(best.text, build_slot_values(ticket, slot_values))
    return DraftResult(
        text=filled,
        kind=DRAFT_KIND_FALLBACK,
        model="",
        citations=[best.rank],
        grounding=1.0,
        fallback_reason=reason,
        details={"unfilled_slots": list(unfilled), **details},
        **spent,
    )


def stream_reply(
    text: str,
    intent: str | None,
    passages: Sequence[PassageRecord],
    *,
    on_piece: Callable[[str], None],
    drafter: TextGenerator | None = None,
    embedder: TextEmbedder | None = None,
    stop: threading.Event | None = None,
) -> DraftResult:
    """Draft one reply, handing each text piece to `on_piece` as the drafter writes it.

    Args:
        text: The masked ticket text.
        intent: The ticket's intent, if triage found one.
        passages: The ticket's passages, best first.
        on_piece: Called with each piece of text, in the drafter's thread.
        drafter: The causal LM; by default `load_drafter()`.
        embedder: Sentence embedder of the grounding check.
        stop: Checked before each piece; once set, generation stops after the
            current token.

    Returns:
        The judged draft, exactly as `draft_replies` would judge it: a failed
        grounding check or a drafter error gives the fallback, or ``no_answer``
        without passages.

    Raises:
        DraftCancelledError: If `stop` was set before the draft was finished.
    """
    embedder = embedder or load_text_embedder(None)
    stop = stop or threading.Event()
    started = time.perf_counter()
    try:
        drafter = drafter or load_drafter()
        max_new_tokens = reply_budget(drafter)
        prompt = build_draft_prompt(drafter, text, intent, passages)
        pieces = _collect_pieces(
            drafter, prompt.text, max_new_tokens=max_new_tokens, on_piece=on_piece, stop=stop
        )
    except DraftCancelledError:
        raise
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
    judged = _judge(generation, used, ticket=text, model=drafter.reference or "", embedder=embedder)
    return _settle(judged, ticket=text, passages=passages, slot_values=None)


def _collect_pieces(
    drafter: TextGenerator,
    prompt: str,
    *,
    max_new_tokens: int,
    on_piece: Callable[[str], None],
    stop: threading.Event,
) -> list[str]:
    pieces: list[str] = []
    # Closing the stream stops `generate` after its current step and joins its thread.
    with closing(drafter.stream(prompt, max_new_tokens=max_new_tokens)) as stream:
        for piece in stream:
            if stop.is_set():
                break
            pieces.append(piece)
            on_piece(piece)
    if stop.is_set():
        raise DraftCancelledError(
            f"drafting was stopped after {len(pieces)} pieces; nothing was stored"
        )
    return pieces


@dataclass(frozen=True)
class _StreamedGeneration:
    text: str
    n_new_tokens: int
    finished: bool
    seconds: float
