"""Short, readable reasons for recommendations, in English with gettext msgids."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["describe_reason"]


def describe_reason(
    reason: str,
    *,
    anchor_title: str | None,
    tag: str | None,
    translate: Callable[[str], str] = lambda text: text,
) -> str:
    """Return the sentence shown for a reason; `translate` maps an English msgid."""
    if reason in ("similar", "co_interacted") and anchor_title:
        template = (
            "Similar to %(title)s, which you liked"
            if reason == "similar"
            else "Often chosen with %(title)s"
        )
        return translate(template) % {"title": anchor_title}
    if reason in ("popular", "trending") and tag:
        template = "Popular in %(tag)s" if reason == "popular" else "Trending in %(tag)s"
        return translate(template) % {"tag": tag}
    if reason == "trending":
        return translate("Trending now")
    if reason == "query":
        return translate("Matches your search")
    return translate("Popular with everyone")
