"""Knowledge-base files, Bitext articles and slots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.support.knowledge import (
    build_bitext_articles,
    fill_slots,
    find_slots,
    find_ticket_slot_values,
    read_article_file,
)
from shared.data import LabelledText
from shared.errors import DataError


def test_find_slots_in_order_without_repeats() -> None:
    """Slots come back once each, in order of first use, with inner spaces trimmed."""
    text = "Use {{Order Number}} on {{ Website URL }} or call {{Order Number}}."
    assert find_slots(text) == ("Order Number", "Website URL")


def test_fill_slots_leaves_unknown_slots_for_the_agent() -> None:
    """Known slots are filled case-insensitively; the rest stay visible and are reported."""
    filled, unfilled = fill_slots(
        "Order {{Order Number}} ships from {{Company Name}}.", {"order number": "A-1234"}
    )
    assert filled == "Order A-1234 ships from {{Company Name}}."
    assert unfilled == ("Company Name",)


@pytest.mark.parametrize(
    ("ticket", "order_number"),
    [
        ("Where is order 12345?", "12345"),
        ("Please cancel my order #A-99812 today", "A-99812"),
        ("Where is #A-99812?", "A-99812"),
        ("My order number: 778899 has not arrived", "778899"),
        ("Order No. 4417-22 is late", "4417-22"),
        ("order ID 55555, thanks", "55555"),
        ("my order is 12345", "12345"),
        ("How do I cancel order ORD-55821?", "ORD-55821"),
        ("ORD-55821 never came", "ORD-55821"),
        ("cancel purchase 3707955617", "3707955617"),
        ("订单号 12345 还没到", "12345"),
        ("订单编号：A-99812，请取消", "A-99812"),
        ("我的订单号是１２３４５６", "123456"),
    ],
)
def test_find_ticket_slot_values_reads_order_numbers(ticket: str, order_number: str) -> None:
    """The order number a ticket states fills both Bitext spellings of the slot."""
    assert find_ticket_slot_values(ticket) == {
        "Order Number": order_number,
        "Order Number Anonymized": order_number,
    }


@pytest.mark.parametrize(
    "ticket",
    [
        "I want to order 2 items",
        "order #1 please",
        "order 300 units",
        "I placed an order on 2024-05-01",
        "reorder 12345",
        "my order [PHONE_1] is late",
        "Where is my parcel?",
        "",
    ],
)
def test_find_ticket_slot_values_ignores_other_numbers(ticket: str) -> None:
    """Quantities, dates, short numbers and masked values are no order number."""
    assert find_ticket_slot_values(ticket) == {}


def test_build_bitext_articles_deduplicates_responses_per_intent() -> None:
    """One article per distinct (intent, response); each keeps its intent and slots."""
    examples = [
        LabelledText("cancel my order", "cancel_order", {"response": "Go to {{Order Page}}."}),
        LabelledText("please cancel", "cancel_order", {"response": "Go to {{Order Page}}."}),
        LabelledText("where is it", "track_order", {"response": "Go to {{Order Page}}."}),
        LabelledText("empty reply", "track_order", {"response": "  "}),
    ]
    articles = build_bitext_articles(examples)
    assert [(a.intent, a.title) for a in articles] == [
        ("cancel_order", "cancel my order"),
        ("track_order", "where is it"),
    ]
    assert articles[0].slots == ("Order Page",)


def test_read_article_file_markdown_sections_and_intents(tmp_path: Path) -> None:
    """Each heading starts an article; an `Intent:` line under it tags the article."""
    path = tmp_path / "kb.md"
    path.write_text(
        "# Refunds\nIntent: get_refund\n\nRefunds take {{Days}} days.\n\n"
        "## 退货政策\n收到商品后七天内可以退货。\n\n## Empty\n\n",
        encoding="utf-8",
    )
    articles = read_article_file(path)
    assert [(a.title, a.intent, a.body) for a in articles] == [
        ("Refunds", "get_refund", "Refunds take {{Days}} days."),
        ("退货政策", None, "收到商品后七天内可以退货。"),
    ]
    assert articles[0].slots == ("Days",)


def test_read_article_file_csv_and_jsonl(tmp_path: Path) -> None:
    """CSV and JSONL rows become articles with their title and intent."""
    csv_path = tmp_path / "kb.csv"
    csv_path.write_text("title,intent,body\nShipping,delivery,We ship daily.\n", encoding="utf-8")
    jsonl_path = tmp_path / "kb.jsonl"
    jsonl_path.write_text(
        json.dumps({"text": "密码可以在设置里重置。", "intent": "reset_password"}) + "\n\n",
        encoding="utf-8",
    )
    assert [(a.title, a.intent, a.body, a.source) for a in read_article_file(csv_path)] == [
        ("Shipping", "delivery", "We ship daily.", "csv")
    ]
    assert [(a.intent, a.body) for a in read_article_file(jsonl_path)] == [
        ("reset_password", "密码可以在设置里重置。")
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("kb.txt", "hello", "suffix '.txt'"),
        ("kb.csv", "title,intent\nA,b\n", "add a `body` column"),
        ("kb.jsonl", "[1, 2]\n", "expected a JSON object"),
        ("kb.jsonl", "{not json\n", "is not valid JSON"),
        ("kb.jsonl", '{"title": "no body"}\n', "has no article text"),
    ],
)
def test_read_article_file_refuses_malformed_files(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    """A malformed file fails with an error naming the file and the fix."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_article_file(path)


def test_build_bitext_articles_turns_echoed_numbers_into_a_slot() -> None:
    """A number the reply copied from its request becomes `{{Order Number}}`."""
    examples = [
        LabelledText(
            "how can I cancel purchase 113542617735902?",
            "cancel_order",
            {"response": "To cancel purchase 113542617735902, open Orders. Call us 24/7."},
        )
    ]
    [article] = build_bitext_articles(examples)
    assert article.body == "To cancel purchase {{Order Number}}, open Orders. Call us 24/7."
    assert article.slots == ("Order Number",)
