"""The labelled-text example type, text normalisation and content hashes."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "LabelledText",
    "deduplicate",
    "deduplicate_texts",
    "normalize_text",
    "text_hash",
]


@dataclass(frozen=True)
class LabelledText:
    """One text with its class label.

    Attributes:
        text: The raw text, exactly as the data set stores it.
        label: The class name.
        meta: Extra string fields from the source row, such as the target entity of an
            entity-level sentiment label. Stored as a copy of the mapping that was
            passed, and left out of the hash.
    """

    text: str
    label: str
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Copy so that a caller who later mutates its own dict cannot change the example.
        object.__setattr__(self, "meta", dict(self.meta))


def normalize_text(text: str) -> str:
    """Normalise text for duplicate detection.

    Applies Unicode NFKC (full-width letters and digits become ASCII, the ideographic
    space becomes a plain space), casefolds, collapses every run of Unicode whitespace
    to one space and strips both ends. Chinese characters are left as they are, so the
    function works for Chinese, English and mixed text.

    Args:
        text: Any string.

    Returns:
        The normalised string; empty when `text` contains only whitespace.
    """
    # Casefolding can leave text that is not in NFKC form: U+01F0 (j with caron)
    # casefolds to "j" plus a combining caron. Normalising again makes such pairs equal.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def text_hash(text: str) -> str:
    """Return the SHA-256 hex digest of the UTF-8 bytes of `normalize_text(text)`."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def deduplicate(examples: Iterable[LabelledText]) -> list[LabelledText]:
    """Drop examples whose normalised text and label repeat an earlier example.

    The first occurrence is kept with its `meta`, and the order is preserved. Examples
    with equal normalised text but different labels are all kept, because they are
    conflicts rather than duplicates. `split_examples` puts such a group in one split.

    Args:
        examples: Examples in any order.

    Returns:
        A new list without the repeats.
    """
    seen: set[tuple[str, str]] = set()
    kept: list[LabelledText] = []
    for example in examples:
        key = (text_hash(example.text), example.label)
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept


def deduplicate_texts(texts: Iterable[str], *, exclude: Iterable[str] = ()) -> list[str]:
    """Drop texts whose normalised form repeats an earlier text or matches `exclude`.

    Args:
        texts: Raw texts in any order. Texts that are empty after normalisation are
            dropped as well.
        exclude: Texts to leave out, compared after normalisation.

    Returns:
        The first occurrence of each remaining text, unchanged and in input order.
    """
    seen = {text_hash(text) for text in exclude}
    kept: list[str] = []
    for text in texts:
        if not normalize_text(text):
            continue
        digest = text_hash(text)
        if digest not in seen:
            seen.add(digest)
            kept.append(text)
    return kept
