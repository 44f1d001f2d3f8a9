"""Prompt strings for drafting: the chat layout, and fitting passages into the context.

`build_prompt` renders a (system, user) pair with the tokenizer's chat template,
or with a plain text layout for models that have none (gpt2, say).

`fit_prompt` builds the drafting prompt from a ticket and retrieved passages.
The passages are numbered ``[1]``, ``[2]`` ... in their given order so that a
draft can cite them. When the prompt is too long for the context, it gives up
text in this order: whole passages from the end, then the tail of the last
passage kept, then the middle (or the end) of the ticket. The system text is
never cut.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from jinja2 import TemplateError
from transformers import PreTrainedTokenizerBase

from shared.errors import GenerationError
from shared.generation._tokens import encode_prompt

__all__ = [
    "PASSAGES_HEADING",
    "TICKET_HEADING",
    "FittedPrompt",
    "TicketTruncation",
    "build_prompt",
    "fit_prompt",
    "format_user_message",
]

logger = logging.getLogger(__name__)

PASSAGES_HEADING = "Passages:"
TICKET_HEADING = "Ticket:"
TRUNCATION_MARK = " [...] "
# A cut passage shorter than this is dropped instead, because a few words out of
# context help the draft less than the tokens they take.
MIN_PASSAGE_TOKENS = 8

TicketTruncation = Literal["middle", "end"]


@dataclass(frozen=True)
class FittedPrompt:
    """A drafting prompt that fits the model's context.

    Attributes:
        text: The prompt string, ready for `TextGenerator.generate`.
        passages_used: Indices into the given passages of those in the prompt,
            ascending. Passage ``i`` appears as ``[i + 1]``.
        n_prompt_tokens: Token count of `text` as the model reads it.
        passage_truncated: Whether the last passage in `passages_used` was cut.
        ticket_truncated: Whether part of the ticket text was cut.
    """

    text: str
    passages_used: list[int]
    n_prompt_tokens: int
    passage_truncated: bool = False
    ticket_truncated: bool = False


def build_prompt(tokenizer: PreTrainedTokenizerBase, *, system: str, user: str) -> str:
    """Render a system text and a user message into the model's input string.

    With a chat template, the string ends with the template's generation prompt
    (the assistant turn's opening). Templates that reject a system turn, such as
    Gemma's, get the system text as the first paragraph of the user message.
    Without a template the layout is ``System:``, ``Customer:`` and ``Reply:``
    sections, and the System section is left out when `system` is empty.

    Args:
        tokenizer: The model's tokenizer.
        system: Instructions for the model.
        user: The user's message, e.g. from `format_user_message`.

    Returns:
        The prompt string. Encode it with `encode_prompt`, not with a plain
        tokenizer call, so that no second set of special tokens is added.
    """
    if not tokenizer.chat_template:
        system_part = f"System:\n{system}\n\n" if system else ""
        return f"{system_part}Customer:\n{user}\n\nReply:\n"
    messages = [{"role": "user", "content": user}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    try:
        return _render_chat(tokenizer, messages)
    except TemplateError:
        if not system:
            raise
        logger.debug("Chat template rejects a system turn; merging it into the user turn")
        merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
        return _render_chat(tokenizer, merged)


def _render_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if not isinstance(text, str):
        raise GenerationError(
            f"The chat template of {type(tokenizer).__name__} returned "
            f"{type(text).__name__}, not a string. Check `tokenizer.chat_template`."
        )
    return text


def format_user_message(ticket: str, passages: Sequence[str]) -> str:
    """Return the user message: the numbered passages first, then the ticket.

    Without passages the message is the ticket text alone.
    """
    if not passages:
        return ticket
    numbered = "\n\n".join(f"[{number}] {text}" for number, text in enumerate(passages, 1))
    return f"{PASSAGES_HEADING}\n{numbered}\n\n{TICKET_HEADING}\n{ticket}"


def fit_prompt(
    tokenizer: PreTrainedTokenizerBase,
    *,
    system: str,
    ticket: str,
    passages: Sequence[str],
    max_new_tokens: int,
    context_limit: int,
    ticket_truncation: TicketTruncation = "middle",
) -> FittedPrompt:
    """Build the drafting prompt, cut so that it and the reply fit `context_limit` tokens.

    Args:
        tokenizer: The model's tokenizer.
        system: Instructions for the model, including how to cite passages.
        ticket: The customer's ticket text.
        passages: Retrieved passages, best first. The last ones are dropped first.
        max_new_tokens: Tokens kept free for the reply.
        context_limit: The model's context size in tokens.
        ticket_truncation: Cut the ticket in the ``"middle"`` (keeping its
            opening and its closing question) or at the ``"end"``.

    Returns:
        The prompt and what was kept of the input.

    Raises:
        ValueError: If `max_new_tokens` or `context_limit` is below 1, or
            `ticket_truncation` is unknown.
        GenerationError: If the system text alone, or with one ticket token,
            does not fit in `context_limit - max_new_tokens` tokens.
    """
    budget = _prompt_budget(max_new_tokens=max_new_tokens, context_limit=context_limit)
    if ticket_truncation not in ("middle", "end"):
        raise ValueError(
            f"`ticket_truncation` must be 'middle' or 'end', got {ticket_truncation!r}."
        )

    def count(text: str) -> int:
        return len(encode_prompt(tokenizer, text))

    def render(ticket_text: str, kept_passages: Sequence[str]) -> str:
        user = format_user_message(ticket_text, kept_passages)
        return build_prompt(tokenizer, system=system, user=user)

    _check_system_fits(count(render("", [])), budget=budget, max_new_tokens=max_new_tokens)
    full_text = render(ticket, passages)
    n_full_tokens = count(full_text)
    if n_full_tokens <= budget:
        return FittedPrompt(full_text, list(range(len(passages))), n_full_tokens)

    n_whole = _count_whole_passages(
        passages, fits=lambda kept_passages: count(render(ticket, kept_passages)) <= budget
    )
    # The ticket is cut only when it does not fit even without any passage.
    if passages and (n_whole > 0 or count(render(ticket, [])) <= budget):
        return _fit_cut_passage(
            tokenizer,
            passages,
            n_whole=n_whole,
            render=lambda kept_passages: render(ticket, kept_passages),
            count=count,
            budget=budget,
        )
    return _fit_cut_ticket(
        tokenizer,
        ticket,
        mode=ticket_truncation,
        render=lambda cut: render(cut, []),
        count=count,
        budget=budget,
        max_new_tokens=max_new_tokens,
    )


def _prompt_budget(*, max_new_tokens: int, context_limit: int) -> int:
    if max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be at least 1, got {max_new_tokens!r}.")
    if context_limit < 1:
        raise ValueError(f"`context_limit` must be at least 1, got {context_limit!r}.")
    if max_new_tokens >= context_limit:
        raise ValueError(
            f"`max_new_tokens` ({max_new_tokens}) must be below `context_limit` "
            f"({context_limit}), or no prompt token fits. Lower `max_new_tokens`."
        )
    return context_limit - max_new_tokens


def _check_system_fits(n_tokens: int, *, budget: int, max_new_tokens: int) -> None:
    if n_tokens > budget:
        raise GenerationError(
            f"The system text alone takes {n_tokens} prompt tokens, more than the "
            f"{budget} left after reserving `max_new_tokens` ({max_new_tokens}). "
            "Shorten the system text or lower `max_new_tokens`."
        )


def _count_whole_passages(passages: Sequence[str], *, fits: Callable[[Sequence[str]], bool]) -> int:
    """Return how many leading passages fit whole."""
    n_kept = 0
    while n_kept < len(passages) and fits(passages[: n_kept + 1]):
        n_kept += 1
    return n_kept


def _fit_cut_passage(
    tokenizer: PreTrainedTokenizerBase,
    passages: Sequence[str],
    *,
    n_whole: int,
    render: Callable[[Sequence[str]], str],
    count: Callable[[str], int],
    budget: int,
) -> FittedPrompt:
    """Keep `n_whole` passages and as much of the next one as fits."""
    kept = list(passages[:n_whole])
    ids = tokenizer(passages[n_whole], add_special_tokens=False)["input_ids"]

    def with_head(n_tokens: int) -> str:
        return render([*kept, _decode(tokenizer, ids[:n_tokens])])

    n_tokens = _largest_fitting(len(ids), fits=lambda n: count(with_head(n)) <= budget)
    if n_tokens < MIN_PASSAGE_TOKENS:
        text = render(kept)
        return FittedPrompt(text, list(range(n_whole)), count(text))
    text = with_head(n_tokens)
    logger.debug(
        "Prompt cut: passages_whole=%d passage_tokens_kept=%d/%d", n_whole, n_tokens, len(ids)
    )
    return FittedPrompt(text, list(range(n_whole + 1)), count(text), passage_truncated=True)


def _fit_cut_ticket(
    tokenizer: PreTrainedTokenizerBase,
    ticket: str,
    *,
    mode: TicketTruncation,
    render: Callable[[str], str],
    count: Callable[[str], int],
    budget: int,
    max_new_tokens: int,
) -> FittedPrompt:
    """Drop every passage and cut the ticket to what fits."""
    ids = tokenizer(ticket, add_special_tokens=False)["input_ids"]

    def cut(n_tokens: int) -> str:
        if mode == "end":
            return _decode(tokenizer, ids[:n_tokens]) + TRUNCATION_MARK.rstrip()
        head = (n_tokens + 1) // 2
        tail = n_tokens - head
        tail_text = _decode(tokenizer, ids[len(ids) - tail :]) if tail else ""
        return _decode(tokenizer, ids[:head]) + TRUNCATION_MARK + tail_text

    n_tokens = _largest_fitting(len(ids), fits=lambda n: count(render(cut(n))) <= budget)
    if n_tokens == 0:
        raise GenerationError(
            f"The system text leaves no room for the ticket within {budget} prompt tokens "
            f"(context minus `max_new_tokens` {max_new_tokens}). Shorten the system text "
            "or lower `max_new_tokens`."
        )
    text = render(cut(n_tokens))
    logger.debug("Prompt cut: ticket_tokens_kept=%d/%d mode=%s", n_tokens, len(ids), mode)
    return FittedPrompt(text, [], count(text), ticket_truncated=True)


def _largest_fitting(upper: int, *, fits: Callable[[int], bool]) -> int:
    """Return the largest n in [0, upper] with `fits(n)`, taking 0 to fit.

    Binary search needs `fits` to be monotone. Decoding a token prefix and
    encoding it again can shift the count by a token either way, so the result
    is a size that fits, not always the very largest.
    """
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _decode(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> str:
    # A cut inside a multi-byte character decodes to U+FFFD; drop that remnant.
    text = str(tokenizer.decode(list(ids), skip_special_tokens=True))
    return text.strip("\ufffd")
