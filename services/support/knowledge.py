"""The knowledge base: articles read from Markdown, CSV, JSONL or the Bitext responses.

An article is an answer template. Placeholders written ``{{Order Number}}``
stay in the text as slots; the drafter keeps them and `fill_slots` fills the
ones whose values are known, from the settings or from the ticket itself
(`find_ticket_slot_values`).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.support.store import ArticleRecord
from shared.data import LabelledText
from shared.errors import DataError

__all__ = [
    "ORDER_NUMBER_SLOTS",
    "SLOT_PATTERN",
    "build_bitext_articles",
    "fill_slots",
    "find_slots",
    "find_ticket_slot_values",
    "read_article_file",
]

logger = logging.getLogger(__name__)

SLOT_PATTERN = re.compile(r"\{\{\s*([^{}\n]{1,80}?)\s*\}\}")
_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$")
_INTENT_LINE = re.compile(r"^\s*intent\s*:\s*(\S.*?)\s*$", re.IGNORECASE)
_BODY_KEYS = ("body", "text", "response", "answer", "content")


def find_slots(text: str) -> tuple[str, ...]:
    """Return the distinct slot names in `text`, in order of first use."""
    return tuple(dict.fromkeys(match.group(1) for match in SLOT_PATTERN.finditer(text)))


def fill_slots(text: str, values: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Replace the slots whose names appear in `values` (case-insensitive).

    Returns:
        The text and the names of the slots left unfilled, which stay as
        ``{{Name}}`` so the agent sees what to complete.
    """
    lookup = {name.casefold(): value for name, value in values.items() if value}
    unfilled: list[str] = []

    def replace(match: re.Match[str]) -> str:
        value = lookup.get(match.group(1).casefold())
        if value is None:
            unfilled.append(match.group(1))
            return match.group(0)
        return value

    filled = SLOT_PATTERN.sub(replace, text)
    return filled, tuple(dict.fromkeys(unfilled))


ORDER_NUMBER_SLOTS = ("Order Number", "Order Number Anonymized")
"""Slot names that stand for the customer's order number; Bitext articles use both."""

# An order number named as such: "order 12345", "order number: 778899",
# "purchase no. A-1", "订单号 12345", "订单编号：A-99812". The link words between
# the name and the value are optional; the value needs a digit (checked below).
_NAMED_ORDER_NUMBER = re.compile(
    r"(?:(?<![a-z])(?:order|purchase)s?(?![a-z])"
    r"(?:\s*(?:number|num|no\.?|id|ref(?:erence)?|code)(?![a-z]))?"
    r"|(?:订单|订货单|單號|单号|訂單)(?:编号|編號|号码|號碼|号|號|编码|id)?)"
    r"(?:\s*(?:is|was|是|为|為|[:#=]))*\s*#?"
    r"(?P<value>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?![a-z0-9])",
    re.IGNORECASE,
)
# An order number written alone: "#A-99812", "ORD-55821".
_BARE_ORDER_NUMBER = re.compile(
    r"(?:(?<![\w#])#|(?<![\w-])(?=ord))(?P<value>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?![\w-])",
    re.IGNORECASE,
)
_MIN_ORDER_NUMBER_DIGITS = 3


def find_ticket_slot_values(text: str) -> dict[str, str]:
    """Return the slot values a ticket states itself: its order number, if any.

    Full-width digits and letters are read as ASCII ("订单号１２３４５" gives
    ``12345``). A candidate needs at least three digits and four characters, so
    "order 2 items" and "order #1" give nothing. A number masked as personal data
    (``[PHONE_1]``) is no value, so its slot stays for the agent to fill.

    Returns:
        Each name in `ORDER_NUMBER_SLOTS` mapped to the first order number found,
        or an empty dict.
    """
    folded = unicodedata.normalize("NFKC", text)
    for pattern in (_NAMED_ORDER_NUMBER, _BARE_ORDER_NUMBER):
        for match in pattern.finditer(folded):
            value = match.group("value")
            digits = sum(char.isdigit() for char in value)
            if digits >= _MIN_ORDER_NUMBER_DIGITS and len(value) >= 4:
                return dict.fromkeys(ORDER_NUMBER_SLOTS, value)
    return {}


_ECHOED_NUMBER = re.compile(r"\b[A-Za-z#-]*\d[\dA-Za-z-]{3,}\b")


def _generalise_echoed_numbers(request: str, response: str) -> str:
    """Turn numbers the reply copied from its request into the `{{Order Number}}` slot.

    Many Bitext replies repeat the customer's order or purchase number. Kept
    as they are, such articles hand one customer's number to the next.
    """
    for token in set(_ECHOED_NUMBER.findall(request)):
        if sum(char.isdigit() for char in token) >= 4 and token in response:
            response = re.sub(
                rf"(?<![\w-]){re.escape(token)}(?![\w-])", "{{Order Number}}", response
            )
    return response


def build_bitext_articles(examples: Sequence[LabelledText]) -> list[ArticleRecord]:
    """Turn Bitext requests into articles: one per distinct response and intent.

    Args:
        examples: Output of `pipelines.datasets.read_bitext` (or a split of it);
            each carries its response in ``meta["response"]``.

    Returns:
        Articles tagged with their intent, titled with the first request that
        led to them, deduplicated on the response text. Numbers a reply copied
        from its request become the ``{{Order Number}}`` slot.
    """
    seen: set[tuple[str, str]] = set()
    articles = []
    for example in examples:
        body = str(example.meta.get("response", "")).strip()
        body = _generalise_echoed_numbers(example.text, body)
        if not body or (example.label, body) in seen:
            continue
        seen.add((example.label, body))
        articles.append(
            ArticleRecord(
                body=body,
                source="bitext",
                title=example.text.strip()[:500],
                intent=example.label,
                slots=find_slots(body),
            )
        )
    logger.info("bitext articles built: examples=%d articles=%d", len(examples), len(articles))
    return articles


def read_article_file(path: Path) -> list[ArticleRecord]:
    """Read articles from a Markdown, CSV or JSONL file.

    Markdown: each heading starts an article titled by it; a line
    ``Intent: <name>`` right under the heading tags it. A file without
    headings is one article titled by the file name. CSV and JSONL: one article
    per row, the text in `body` (or `text`, `response`, `answer`, `content`),
    optional `title` and `intent`.

    Raises:
        DataError: If the file type is unsupported, a row has no text, or a
            JSONL line is not a JSON object.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"`path` {str(path)!r} is not a file; pass a .md, .csv or .jsonl file.")
    if suffix in (".md", ".markdown"):
        return _read_markdown(path)
    if suffix == ".csv":
        return [_record_from_row(row, path=path, line=line) for line, row in _csv_rows(path)]
    if suffix in (".jsonl", ".ndjson"):
        return [_record_from_row(row, path=path, line=line) for line, row in _jsonl_rows(path)]
    raise DataError(
        f"`path` {str(path)!r} has suffix {suffix!r}; articles are read from .md, .csv or .jsonl."
    )


def _read_markdown(path: Path) -> list[ArticleRecord]:
    text = path.read_text(encoding="utf-8")
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            sections.append((heading.group(2), []))
        elif sections:
            sections[-1][1].append(line)
        elif line.strip():
            sections.append((path.stem, [line]))
    return [record for title, lines in sections if (record := _markdown_record(title, lines))]


def _markdown_record(title: str, lines: list[str]) -> ArticleRecord | None:
    intent = None
    body_lines = list(lines)
    while body_lines and not body_lines[0].strip():
        body_lines.pop(0)
    if body_lines and (match := _INTENT_LINE.match(body_lines[0])):
        intent = match.group(1)
        body_lines.pop(0)
    body = "\n".join(body_lines).strip()
    if not body:
        return None
    return ArticleRecord(
        body=body, source="markdown", title=title, intent=intent, slots=find_slots(body)
    )


def _csv_rows(path: Path) -> list[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not set(_BODY_KEYS) & set(reader.fieldnames):
            raise DataError(
                f"{str(path)!r} has columns {reader.fieldnames!r}; add a `body` column "
                "with the article text."
            )
        return [(reader.line_num, dict(row)) for row in reader]


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, object]]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{str(path)!r} line {line_number} is not valid JSON ({exc.msg}); "
                    "write one JSON object per line."
                ) from exc
            if not isinstance(row, dict):
                raise DataError(
                    f"{str(path)!r} line {line_number} contains {type(row).__name__}, "
                    "expected a JSON object with a `body` key."
                )
            rows.append((line_number, row))
    return rows


def _record_from_row(row: Mapping[str, object], *, path: Path, line: int) -> ArticleRecord:
    body = next((str(row[key]).strip() for key in _BODY_KEYS if row.get(key)), "")
    if not body:
        raise DataError(
            f"{str(path)!r} line {line} has no article text; put it in a `body` column."
        )
    intent = str(row["intent"]).strip() if row.get("intent") else None
    return ArticleRecord(
        body=body,
        source=path.suffix.lower().lstrip(".").replace("ndjson", "jsonl"),
        title=str(row.get("title") or "").strip()[:500],
        intent=intent,
        slots=find_slots(body),
    )
