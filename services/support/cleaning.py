"""Clean a ticket's raw text before any model, log or export receives it.

Tickets arrive from web forms and e-mail, often as HTML, in English, Chinese or
both, and sometimes with broken encodings. `clean_text` turns such input into
plain text in four steps:

1. Encoding repair: lone surrogates become U+FFFD, and text that is entirely
   UTF-8 mis-decoded as Windows-1252 (``"æˆ‘"`` for ``"我"``) is decoded again.
2. Markup removal: tags are stripped and entities unescaped, repeatedly, so
   text escaped twice (``&amp;lt;b&amp;gt;``) ends without tags.
3. Character repair: control and invisible format characters are dropped and
   the text is put in Unicode NFC. Full-width characters are kept, so Chinese
   punctuation survives.
4. Whitespace: runs of spaces and tabs become one space, and more than one
   blank line becomes one.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from html.parser import HTMLParser

from shared.errors import DataError

__all__ = ["DEFAULT_MAX_CHARS", "TicketTextError", "clean_text"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 20_000
"""Default limit on the raw length of one ticket, in characters."""

# Each round unescapes two levels of entities, so four rounds handle text escaped
# up to eight times. The bound keeps hostile input from looping.
_MAX_MARKUP_ROUNDS = 4

# Elements whose text is code or styling, never part of the customer's message.
_DROPPED_CONTENT_TAGS = frozenset({"script", "style", "template"})

# Elements that start a new line when rendered.
_LINE_BREAK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
        "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip

# Elements that render inline or not at all. A tag whose name is in none of these
# sets and is not a prefixed or custom element name is kept as text, so that
# "Zhang San <zhang@example.com>" and "<https://example.com/faq>" in a plain-text
# mail keep the address.
_INLINE_TAGS = frozenset(
    {
        "a", "abbr", "b", "bdi", "bdo", "big", "body", "button", "caption", "center",
        "cite", "code", "col", "colgroup", "data", "del", "dfn", "em", "font", "head",
        "html", "i", "img", "input", "ins", "kbd", "label", "link", "mark", "meta",
        "noscript", "option", "picture", "q", "s", "samp", "select", "small", "source",
        "span", "strike", "strong", "sub", "sup", "svg", "td", "textarea", "th", "time",
        "title", "tt", "u", "var", "wbr",
    }
)  # fmt: skip

_KNOWN_TAGS = _DROPPED_CONTENT_TAGS | _LINE_BREAK_TAGS | _INLINE_TAGS
# Prefixed XML names from Office mail (<o:p>, <v:shape>) and custom element
# names, which need a hyphen (<my-widget>).
_PREFIXED_OR_CUSTOM_TAG = re.compile(r"[a-z][a-z0-9]*(?::[a-z][a-z0-9-]*|-[a-z0-9-]*)")

# Characters that end a line in some convention; all become "\n".
_LINE_ENDINGS = re.compile("\r\n|[\r\v\f\x85\u2028\u2029]")
_HORIZONTAL_SPACE = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f]+")
_SPACE_AROUND_NEWLINE = re.compile(" ?\n ?")
_BLANK_LINES = re.compile("\n{3,}")
# A "<" that meets another "<" or the end of the text before any ">" cannot start
# a complete tag. Escaping it keeps html.parser linear: on such input the
# Python 3.11 parser rescans to the end of the text for every "<".
_UNCLOSED_TAG_START = re.compile(r"<(?=[^<>]*(?:<|\Z))")


class TicketTextError(DataError):
    """A ticket's text is not a string, is too long, or has no content left after cleaning."""


class _TextExtractor(HTMLParser):
    """Collect the text of an HTML fragment, with line breaks where blocks start and end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropped_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_CONTENT_TAGS:
            self._dropped_depth += 1
        elif not _is_markup_tag(tag):
            self.parts.append(self.get_starttag_text() or "")
        elif tag in _LINE_BREAK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # A self-closing tag opens nothing, so it must not start a dropped region.
        if not _is_markup_tag(tag):
            self.parts.append(self.get_starttag_text() or "")
        elif tag in _LINE_BREAK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED_CONTENT_TAGS:
            self._dropped_depth = max(0, self._dropped_depth - 1)
        elif not _is_markup_tag(tag):
            self.parts.append(f"</{tag}>")
        elif tag in _LINE_BREAK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._dropped_depth == 0:
            self.parts.append(data)


def clean_text(raw: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Turn a ticket's raw text, plain or HTML, into clean plain text.

    Args:
        raw: The text as it arrived from the web form or the e-mail body.
        max_chars: Maximum length of `raw` in characters, checked before cleaning.

    Returns:
        Plain text in Unicode NFC with line breaks kept, at most one blank line in a
        row, single spaces and no leading or trailing whitespace.

    Raises:
        TicketTextError: If `raw` is not a str, is longer than `max_chars`, or is
            empty after markup and whitespace are removed. Any str within the limit
            is either cleaned or rejected with this error.
        ValueError: If `max_chars` is not a positive int.
    """
    _check_raw_text(raw, max_chars=max_chars)

    text = _repair_encoding(raw)
    text = _repair_characters(text)
    text = _strip_markup(text)
    text = _repair_characters(text)
    text = _collapse_whitespace(text)

    if not text:
        raise TicketTextError(
            "`text` is empty after removing markup and whitespace; send the customer's message."
        )
    return text


def _check_raw_text(raw: object, *, max_chars: int) -> None:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"`max_chars` must be a positive int, got {max_chars!r}.")
    # The messages leave out the text itself, because it is customer data.
    if not isinstance(raw, str):
        raise TicketTextError(
            f"the message must be text, got {type(raw).__name__}; pass the message text, "
            "decoded if it arrived as bytes."
        )
    if len(raw) > max_chars:
        raise TicketTextError(
            f"the message has {len(raw)} characters, more than the limit of {max_chars}; "
            "shorten it or split it into several tickets."
        )


def _repair_encoding(text: str) -> str:
    """Replace lone surrogates and undo a whole-text UTF-8 as Windows-1252 mis-decoding."""
    # A surrogate pair stored as two code points (from a bad JSON decoder) joins
    # into one character here, and a lone surrogate becomes U+FFFD.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if text.isascii():
        return text
    try:
        raw_bytes = bytes(_WINDOWS_1252_BYTES[char] for char in text)
        return raw_bytes.decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        # Either the text has characters outside Windows-1252 (so it was not
        # mis-decoded as a whole) or its bytes are not UTF-8 (so it is genuine
        # Windows-1252 text such as "café"). Both stay as they are.
        return text


def _build_windows_1252_bytes() -> dict[str, int]:
    """Map each character a Windows-1252 decoder can produce back to its byte."""
    table: dict[str, int] = {}
    for byte in range(256):
        try:
            table[bytes([byte]).decode("cp1252")] = byte
        except UnicodeDecodeError:
            # Python leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined, but Windows
            # and browsers decode them to the C1 control with the same number.
            table[chr(byte)] = byte
    return table


_WINDOWS_1252_BYTES = _build_windows_1252_bytes()


def _repair_characters(text: str) -> str:
    """Unify line endings, drop control and format characters, and normalise to NFC."""
    text = _LINE_ENDINGS.sub("\n", text)
    # Format characters (category Cf) are invisible: zero-width spaces and joiners,
    # the BOM, soft hyphens and bidirectional marks. Inside a number or an address
    # they would hide it from PII masking, and bidirectional overrides can make
    # the text read differently from what it contains. Dropping the zero-width
    # joiner splits emoji sequences such as families into their single emoji.
    kept = [
        char for char in text if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf")
    ]
    return unicodedata.normalize("NFC", "".join(kept))


def _strip_markup(text: str) -> str:
    """Strip tags and unescape entities until the text stops changing."""
    for _ in range(_MAX_MARKUP_ROUNDS):
        stripped = _strip_markup_once(text)
        if stripped == text:
            return stripped
        text = stripped
    # NOTE: text escaped more often than the rounds allow keeps its innermost
    # entities as literal text such as "&lt;b&gt;", which contains no tag.
    logger.debug("markup: still changing after %d rounds", _MAX_MARKUP_ROUNDS)
    return text


def _strip_markup_once(text: str) -> str:
    if "<" not in text and "&" not in text:
        return text
    extractor = _TextExtractor()
    extractor.feed(_UNCLOSED_TAG_START.sub("&lt;", text))
    extractor.close()
    # The parser converts the references in text between tags. Unescaping the
    # result once more handles a second level in the same round, and the next
    # round strips any tags that this produces.
    return html.unescape("".join(extractor.parts))


def _collapse_whitespace(text: str) -> str:
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _is_markup_tag(tag: str) -> bool:
    return tag in _KNOWN_TAGS or _PREFIXED_OR_CUSTOM_TAG.fullmatch(tag) is not None
