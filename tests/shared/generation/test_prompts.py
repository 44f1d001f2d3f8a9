"""Prompt layout, passage numbering and fitting prompts into the model's context."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

import shared.generation
from shared.errors import GenerationError
from shared.generation import (
    TextGenerator,
    build_prompt,
    encode_prompt,
    fit_prompt,
    format_user_message,
)
from tests.shared.generation.tiny_models import build_tiny_tokenizer

SYSTEM = "Answer the customer. Cite passages as [n]."
TICKET = "Where is my refund? I returned the parcel two weeks ago and have heard nothing."
# Six sentences each, so that every passage is far longer than MIN_PASSAGE_TOKENS.
PASSAGES = [
    " ".join([f"Passage {name} says refunds take five days."] * 6)
    for name in ("one", "two", "three", "four")
]


@pytest.fixture
def plain_tokenizer() -> PreTrainedTokenizerBase:
    """A gpt2-like tokenizer: no chat template, no pad token."""
    return build_tiny_tokenizer()


@pytest.fixture
def chat_tokenizer() -> PreTrainedTokenizerBase:
    """The tiny tokenizer with a ChatML chat template."""
    return build_tiny_tokenizer(chat_template=True)


def _count(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    return len(encode_prompt(tokenizer, text))


def _full_prompt_tokens(tokenizer: PreTrainedTokenizerBase, passages: list[str]) -> int:
    user = format_user_message(TICKET, passages)
    return _count(tokenizer, build_prompt(tokenizer, system=SYSTEM, user=user))


def test_public_api_names() -> None:
    """The package exports exactly the documented names."""
    assert sorted(shared.generation.__all__) == [
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


# build_prompt


def test_build_prompt_uses_plain_layout_without_template(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    """A tokenizer without a chat template gets the System/Customer/Reply layout."""
    prompt = build_prompt(plain_tokenizer, system="Be brief.", user="Where is my refund?")

    assert prompt == "System:\nBe brief.\n\nCustomer:\nWhere is my refund?\n\nReply:\n"


def test_build_prompt_omits_empty_system_section(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    prompt = build_prompt(plain_tokenizer, system="", user="Where is my refund?")

    assert prompt == "Customer:\nWhere is my refund?\n\nReply:\n"


def test_build_prompt_uses_chat_template(chat_tokenizer: PreTrainedTokenizerBase) -> None:
    """With a chat template, the prompt is the rendered turns plus the assistant opening."""
    prompt = build_prompt(chat_tokenizer, system="Be brief.", user="Where is my refund?")

    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhere is my refund?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_build_prompt_merges_system_when_template_rejects_it(
    chat_tokenizer: PreTrainedTokenizerBase,
) -> None:
    """A template that raises on a system turn gets the system text inside the user turn."""
    chat_tokenizer.chat_template = (
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ message['role'] + ': ' + message['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )

    prompt = build_prompt(chat_tokenizer, system="Be brief.", user="Where is my refund?")

    assert prompt == "user: Be brief.\n\nWhere is my refund?\nassistant: "


def test_format_user_message_numbers_passages_before_ticket() -> None:
    """Passages are numbered from 1 in their given order, and the ticket comes last."""
    message = format_user_message("Where is my refund?", ["Refunds take 5 days.", "Call us."])

    assert message == (
        "Passages:\n[1] Refunds take 5 days.\n\n[2] Call us.\n\nTicket:\nWhere is my refund?"
    )


def test_format_user_message_without_passages_is_ticket() -> None:
    assert format_user_message("Where is my refund?", []) == "Where is my refund?"


# fit_prompt


def test_fit_prompt_keeps_everything_when_it_fits(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    fitted = fit_prompt(
        plain_tokenizer,
        system=SYSTEM,
        ticket=TICKET,
        passages=PASSAGES,
        max_new_tokens=16,
        context_limit=10_000,
    )

    expected = build_prompt(
        plain_tokenizer, system=SYSTEM, user=format_user_message(TICKET, PASSAGES)
    )
    assert fitted.text == expected
    assert fitted.passages_used == [0, 1, 2, 3]
    assert fitted.n_prompt_tokens == _count(plain_tokenizer, expected)
    assert not fitted.passage_truncated
    assert not fitted.ticket_truncated


@pytest.mark.parametrize("tokenizer_name", ["plain_tokenizer", "chat_tokenizer"])
def test_fit_prompt_drops_last_passages_first(
    tokenizer_name: str, request: pytest.FixtureRequest
) -> None:
    """Passages go from the end, the last one kept is cut, and the ticket stays whole."""
    tokenizer = request.getfixturevalue(tokenizer_name)
    max_new_tokens = 16
    # Room for two whole passages and about half of the third.
    with_two = _full_prompt_tokens(tokenizer, PASSAGES[:2])
    with_three = _full_prompt_tokens(tokenizer, PASSAGES[:3])
    context_limit = (with_two + with_three) // 2 + max_new_tokens

    fitted = fit_prompt(
        tokenizer,
        system=SYSTEM,
        ticket=TICKET,
        passages=PASSAGES,
        max_new_tokens=max_new_tokens,
        context_limit=context_limit,
    )

    assert fitted.passages_used == [0, 1, 2]
    assert fitted.passage_truncated
    assert not fitted.ticket_truncated
    assert f"[1] {PASSAGES[0]}\n\n[2] {PASSAGES[1]}\n\n[3] " in fitted.text
    assert PASSAGES[2] not in fitted.text
    assert "[4]" not in fitted.text
    assert TICKET in fitted.text
    assert fitted.n_prompt_tokens == _count(tokenizer, fitted.text)
    assert fitted.n_prompt_tokens <= context_limit - max_new_tokens


def test_fit_prompt_cut_passage_is_prefix(plain_tokenizer: PreTrainedTokenizerBase) -> None:
    """The last kept passage is cut by tokens from its end, so its opening survives."""
    with_one = _full_prompt_tokens(plain_tokenizer, PASSAGES[:1])
    without_passages = _full_prompt_tokens(plain_tokenizer, [])

    fitted = fit_prompt(
        plain_tokenizer,
        system=SYSTEM,
        ticket=TICKET,
        passages=PASSAGES,
        max_new_tokens=8,
        context_limit=(with_one + without_passages) // 2 + 8,
    )

    assert fitted.passages_used == [0]
    cut = fitted.text.split("[1] ", 1)[1].split("\n\nTicket:", 1)[0]
    assert len(cut) < len(PASSAGES[0])
    assert PASSAGES[0].startswith(cut)


def test_fit_prompt_drops_tiny_passage_cut(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    """When only a few tokens of the next passage would fit, it is left out entirely."""
    with_two = _full_prompt_tokens(plain_tokenizer, PASSAGES[:2])

    fitted = fit_prompt(
        plain_tokenizer,
        system=SYSTEM,
        ticket=TICKET,
        passages=PASSAGES,
        max_new_tokens=8,
        context_limit=with_two + 8 + 3,
    )

    assert fitted.passages_used == [0, 1]
    assert not fitted.passage_truncated
    assert "[3]" not in fitted.text


@pytest.mark.parametrize("tokenizer_name", ["plain_tokenizer", "chat_tokenizer"])
def test_fit_prompt_cuts_ticket_middle_after_passages(
    tokenizer_name: str, request: pytest.FixtureRequest
) -> None:
    """A ticket too long on its own loses every passage and then its middle."""
    tokenizer = request.getfixturevalue(tokenizer_name)
    ticket = "START of the ticket. " + "My card was charged twice. " * 40 + "Where is my refund?"
    system_only = _count(tokenizer, build_prompt(tokenizer, system=SYSTEM, user=""))
    context_limit = system_only + 40 + 16

    fitted = fit_prompt(
        tokenizer,
        system=SYSTEM,
        ticket=ticket,
        passages=PASSAGES,
        max_new_tokens=16,
        context_limit=context_limit,
    )

    assert fitted.passages_used == []
    assert fitted.ticket_truncated
    assert "[1]" not in fitted.text
    assert "START of the ticket." in fitted.text
    assert "Where is my refund?" in fitted.text
    assert "[...]" in fitted.text
    assert fitted.n_prompt_tokens == _count(tokenizer, fitted.text)
    assert fitted.n_prompt_tokens <= context_limit - 16


def test_fit_prompt_cuts_ticket_end(plain_tokenizer: PreTrainedTokenizerBase) -> None:
    """With `ticket_truncation="end"`, the ticket keeps its opening and loses its end."""
    ticket = "START of the ticket. " + "My card was charged twice. " * 40 + "Where is my refund?"
    system_only = _count(plain_tokenizer, build_prompt(plain_tokenizer, system=SYSTEM, user=""))

    fitted = fit_prompt(
        plain_tokenizer,
        system=SYSTEM,
        ticket=ticket,
        passages=[],
        max_new_tokens=16,
        context_limit=system_only + 40 + 16,
        ticket_truncation="end",
    )

    assert fitted.ticket_truncated
    assert "START of the ticket." in fitted.text
    assert "Where is my refund?" not in fitted.text
    assert fitted.n_prompt_tokens <= system_only + 40


def test_fit_prompt_rejects_system_text_too_long(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    with pytest.raises(GenerationError, match="system text alone"):
        fit_prompt(
            plain_tokenizer,
            system=SYSTEM * 20,
            ticket=TICKET,
            passages=PASSAGES,
            max_new_tokens=16,
            context_limit=64,
        )


def test_fit_prompt_rejects_reply_filling_context(
    plain_tokenizer: PreTrainedTokenizerBase,
) -> None:
    """`max_new_tokens` must leave at least one token for the prompt."""
    with pytest.raises(ValueError, match="max_new_tokens"):
        fit_prompt(
            plain_tokenizer,
            system=SYSTEM,
            ticket=TICKET,
            passages=[],
            max_new_tokens=64,
            context_limit=64,
        )


def test_fit_prompt_rejects_unknown_truncation(plain_tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(ValueError, match="ticket_truncation"):
        fit_prompt(
            plain_tokenizer,
            system=SYSTEM,
            ticket=TICKET,
            passages=[],
            max_new_tokens=16,
            context_limit=512,
            ticket_truncation="start",  # type: ignore[arg-type]
        )


def test_generator_fit_prompt_uses_model_context(tiny_generator: TextGenerator) -> None:
    """Without `context_limit`, the tiny GPT-2's 256 positions bound the prompt."""
    long_passages = [passage * 3 for passage in PASSAGES]

    fitted = tiny_generator.fit_prompt(SYSTEM, TICKET, long_passages, max_new_tokens=32)

    assert tiny_generator.context_length == 256
    assert len(fitted.passages_used) < len(long_passages)
    assert fitted.n_prompt_tokens <= 256 - 32
    assert tiny_generator.count_tokens(fitted.text) == fitted.n_prompt_tokens


def test_generator_fit_prompt_rejects_limit_above_context(tiny_generator: TextGenerator) -> None:
    with pytest.raises(ValueError, match="exceeds the model's context of 256"):
        tiny_generator.fit_prompt(SYSTEM, TICKET, [], max_new_tokens=16, context_limit=1024)


def test_fit_prompt_fits_drafter_chat_template(drafter_dir: Path) -> None:
    """With SmolLM2's tokenizer and chat template, the prompt fits and keeps the first passages."""
    tokenizer = AutoTokenizer.from_pretrained(drafter_dir)

    fitted = fit_prompt(
        tokenizer,
        system=SYSTEM,
        ticket=TICKET,
        passages=PASSAGES,
        max_new_tokens=64,
        context_limit=200,
    )

    assert fitted.text.startswith("<|im_start|>system\n" + SYSTEM)
    assert fitted.text.endswith("<|im_start|>assistant\n")
    assert 0 < len(fitted.passages_used) < len(PASSAGES)
    assert TICKET in fitted.text
    assert len(tokenizer(fitted.text, add_special_tokens=False)["input_ids"]) <= 200 - 64
