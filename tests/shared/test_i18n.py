"""Catalog merging, language negotiation and placeholders."""

from __future__ import annotations

import pytest

from shared.i18n import get_translations, negotiate_language, normalize_language, translate


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR,zh;q=0.5", "zh_CN"),
        ("zh-TW", "en"),
        ("", "en"),
        (None, "en"),
        ("*", "en"),
        ("zh;q=abc,en", "en"),
        ("\x00;;,,", "en"),
    ],
)
def test_negotiate_language(header: str | None, expected: str) -> None:
    assert negotiate_language(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "zh_CN"),
        ("", "zh_CN"),
        ("fr-FR", "zh_CN"),
        ("*", "zh_CN"),
        ("zh-TW", "zh_CN"),
        ("en-GB", "en"),
        ("fr-FR,en;q=0.5", "en"),
        ("zh-CN", "zh_CN"),
    ],
)
def test_negotiate_language_falls_back_to_default(header: str | None, expected: str) -> None:
    """A header naming no served language gives `default`; one naming English gives English."""
    assert negotiate_language(header, default="zh_CN") == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("zh", "zh_CN"), ("zh-Hans", "zh_CN"), ("zh_SG", "zh_CN"), ("zh-Hant", "en"), ("??", "en")],
)
def test_normalize_language(tag: str, expected: str) -> None:
    assert normalize_language(tag) == expected


def test_translate_fills_placeholders_in_both_languages() -> None:
    assert translate("%(count)s items", "zh_CN", count=3) == "3 项"
    assert translate("%(count)s items", "en", count=3) == "3 items"


def test_unknown_message_falls_back_to_english() -> None:
    assert get_translations("zh_CN").gettext("No such message") == "No such message"
