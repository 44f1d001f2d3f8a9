"""Short, readable reasons for recommendations, in English with gettext msgids."""

from __future__ import annotations

from collections.abc import Callable

from shared.i18n import N_, get_translations, normalize_language

__all__ = ["REASON_TEMPLATES", "describe_reason", "describe_reason_in"]

# Marked with N_ so that message extraction, and with it the catalog check,
# finds each sentence although `describe_reason` translates it by value.
_SIMILAR = N_("Similar to %(title)s, which you liked")
_CO_INTERACTED = N_("Often chosen with %(title)s")
_POPULAR_IN = N_("Popular in %(tag)s")
_TRENDING_IN = N_("Trending in %(tag)s")
_TRENDING = N_("Trending now")
_QUERY = N_("Matches your search")
_POPULAR = N_("Popular with everyone")

REASON_TEMPLATES = (
    _SIMILAR,
    _CO_INTERACTED,
    _POPULAR_IN,
    _TRENDING_IN,
    _TRENDING,
    _QUERY,
    _POPULAR,
)


def describe_reason(
    reason: str,
    *,
    anchor_title: str | None,
    tag: str | None,
    translate: Callable[[str], str] = lambda text: text,
) -> str:
    """Return the sentence shown for a reason; `translate` maps an English msgid."""
    if reason in ("similar", "co_interacted") and anchor_title:
        template = _SIMILAR if reason == "similar" else _CO_INTERACTED
        return translate(template) % {"title": anchor_title}
    if reason in ("popular", "trending") and tag:
        template = _POPULAR_IN if reason == "popular" else _TRENDING_IN
        return translate(template) % {"tag": tag}
    if reason == "trending":
        return translate(_TRENDING)
    if reason == "query":
        return translate(_QUERY)
    return translate(_POPULAR)


def describe_reason_in(
    language: str, reason: str, *, anchor_title: str | None, tag: str | None
) -> str:
    """Return the sentence shown for a reason in `language` (``en`` or ``zh_CN``)."""
    gettext = get_translations(normalize_language(language)).gettext
    return describe_reason(reason, anchor_title=anchor_title, tag=tag, translate=gettext)
