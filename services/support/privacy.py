"""Mask personal data in ticket text, and keep the originals encrypted.

`mask_pii` replaces e-mail addresses, phone numbers, payment card numbers,
IBANs and Chinese resident ID numbers with numbered placeholders such as
``[EMAIL_1]`` and ``[PHONE_2]``. Models, logs and training exports only ever see
the masked text. The original values go into a `PiiVault` token, encrypted with
Fernet, and `unmask` restores them for the agent's own view of the ticket.

Detection works on English, Chinese and mixed text. It does not rely on ``\\b``
word boundaries, which fail between a Chinese character and a digit ("电话是
13812345678谢谢"). It only treats ASCII letters and digits as parts of a word,
and it reads full-width digits and letters as their ASCII forms.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, get_args

from cryptography.fernet import Fernet, InvalidToken

from shared.errors import ConfigurationError, DataError
from shared.settings import get_settings

__all__ = [
    "PII_KEY_VARIABLE",
    "MaskedText",
    "PiiEntity",
    "PiiKind",
    "PiiRedactingFilter",
    "PiiVault",
    "mask_pii",
    "unmask",
]

logger = logging.getLogger(__name__)

PiiKind = Literal["EMAIL", "PHONE", "CARD", "IBAN", "ID_CN"]
"""Kinds of personal data that `mask_pii` finds; each names its placeholders."""

PII_KEY_VARIABLE = "DIPTYCH_SUPPORT__PII_KEY"
"""Environment variable that contains the vault's Fernet key."""

_KEY_HELP = (
    'generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)

# Placeholder text for every kind: "[", the kind, "_", a number from 1, "]".
_PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|CARD|IBAN|ID_CN)_([1-9][0-9]*)\]")


@dataclass(frozen=True)
class PiiEntity:
    """One occurrence of personal data that `mask_pii` replaced.

    Attributes:
        kind: The kind of data, such as ``"EMAIL"``.
        placeholder: The text that replaced the value, such as ``"[EMAIL_1]"``.
        value: The original text, exactly as it appeared. Left out of `repr` so that
            a logged entity does not leak it.
        start: Offset of the placeholder in the masked text.
        end: Offset just past the placeholder in the masked text, so that
            ``masked.text[start:end] == placeholder``.
    """

    kind: PiiKind
    placeholder: str
    value: str = field(repr=False)
    start: int
    end: int


@dataclass(frozen=True)
class MaskedText:
    """Text with its personal data replaced by placeholders.

    Attributes:
        text: The masked text.
        entities: One entity per replaced occurrence, in text order. Occurrences of
            the same value share one placeholder.
    """

    text: str
    entities: tuple[PiiEntity, ...]


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: PiiKind


def mask_pii(text: str) -> MaskedText:
    """Replace the personal data in `text` with numbered placeholders.

    Placeholders are numbered per kind in order of first appearance: ``[EMAIL_1]``,
    ``[PHONE_1]``, ``[PHONE_2]``. Identical values get the same placeholder, while
    the same number written another way ("138-1234-5678", "13812345678") gets a new
    one, so that `unmask` restores each occurrence exactly. A placeholder that
    already appears literally in `text` is never reused, which keeps
    ``unmask(mask_pii(text)) == text`` for every str.

    Where matches overlap, the kind earlier in this list wins: EMAIL (local parts
    often are phone numbers), IBAN, ID_CN, CARD, PHONE.

    Args:
        text: Any text, normally the output of `clean_text`.

    Returns:
        The masked text and the replaced entities.

    Raises:
        TypeError: If `text` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}.")
    spans = _find_pii_spans(_fold_to_ascii(text))
    return _replace_spans(text, spans)


def unmask(masked: MaskedText | str, entities: Iterable[PiiEntity] | None = None) -> str:
    """Put the original values back in place of their placeholders.

    Works on the masked text itself and on any text derived from it, such as a
    drafted reply that quotes ``[EMAIL_1]``. Placeholders without an entity stay as
    they are.

    Args:
        masked: The output of `mask_pii`, or any text that contains its placeholders.
        entities: The entities to restore; defaults to ``masked.entities`` when
            `masked` is a `MaskedText`.

    Returns:
        The text with each known placeholder replaced by its value.

    Raises:
        TypeError: If `masked` is a str and `entities` is missing.
        ValueError: If two entities give different values for one placeholder.
    """
    if isinstance(masked, MaskedText):
        text = masked.text
        chosen = masked.entities if entities is None else entities
    else:
        if entities is None:
            raise TypeError(
                "`entities` is required when `masked` is a str; pass the entities "
                "from `mask_pii` or `PiiVault.open`."
            )
        text, chosen = masked, entities
    values = _values_by_placeholder(chosen)
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(0), match.group(0)), text)


def _values_by_placeholder(entities: Iterable[PiiEntity]) -> dict[str, str]:
    values: dict[str, str] = {}
    for entity in entities:
        known = values.setdefault(entity.placeholder, entity.value)
        if known != entity.value:
            # The values are personal data, so the message names only the placeholder.
            raise ValueError(
                f"`entities` give two different values for {entity.placeholder!r}; "
                "pass the entities of one `mask_pii` result."
            )
    return values


# ---------------------------------------------------------------------------
# Detection. Every pattern runs on the folded text, which has the same length
# as the original, so offsets carry over unchanged.
# ---------------------------------------------------------------------------

# Full-width ASCII (U+FF01..U+FF5E), the ideographic space, no-break spaces and
# dash variants map to ASCII one character for one character.
_ASCII_FOLDING = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {
    0x3000: 0x20,
    0x00A0: 0x20,
    0x202F: 0x20,
    **{code: 0x2D for code in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2212)},
}

# Words that announce a phone or card number. People glue them to the number
# ("Tel13812345678", "card4111111111111111"), which would otherwise read as a
# reference code.
_NUMBER_KEYWORDS = (
    "tel", "phone", "mobile", "mob", "cell", "fax", "call", "whatsapp", "wechat",
    "card", "visa", "mastercard", "amex", "unionpay",
)  # fmt: skip
# A run of digits that might be a card or phone number must not continue a word
# of ASCII letters and digits or a "+" number, and must not follow "X-" or "X_",
# which marks a reference such as "ORD-2024-000123", unless that word is one of
# the keywords above. Chinese characters are not part of a word, so
# "电话13812345678" is a match.
# The lookahead first keeps the lookbehinds from running at every letter.
_NUMBER_START = (
    r"(?=[0-9])(?:(?<![0-9A-Za-z+])(?<![0-9A-Za-z][-_])|"
    + "|".join(f"(?<=(?<![A-Za-z])(?i:{word}))" for word in _NUMBER_KEYWORDS)
    + ")"
)

# The local part may contain an apostrophe (o'brien@example.ie), but a quote
# before it is punctuation ('zhang@example.com').
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])(?<![A-Za-z0-9]')[A-Za-z0-9._%+\-]++(?:'[A-Za-z0-9._%+\-]++)*+@"
    r"(?:[A-Za-z0-9\-]++\.)+[A-Za-z]{2,63}+(?![A-Za-z0-9\-])",
    re.ASCII,
)
# Internationalised addresses (RFC 6531): letters of any script in the local
# part and the domain ("张三@例子.中国", "josé@exämple.de"). Searched after the
# ASCII pattern, whose spans win, so a Chinese word glued to an ASCII address
# stays out of it. A glued word around a non-ASCII address cannot be
# distinguished from the address and is masked with it.
_EMAIL_UNICODE = re.compile(r"(?<![\w.%+\-])[\w.%+\-]++@(?:[\w\-]++\.)+[^\W\d_]{2,63}+(?![\w\-])")
# Zero-width, so that a rejected candidate does not hide an IBAN that starts
# inside it. Validation cuts the candidate to the country's length.
_IBAN_CANDIDATE = re.compile(
    r"(?<![0-9A-Za-z])(?=([A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}+))", re.ASCII
)
# 6 region digits, 8 birth-date digits, 3 sequence digits and a check character,
# optionally in groups of 6, 8 and 4. The check character and the birth date make
# chance matches rare, so letters may touch it ("ID11010519491231002X"); only
# more digits may not.
_CN_ID = re.compile(r"(?<![0-9])[1-9][0-9]{5} ?[0-9]{8} ?[0-9]{3}[0-9Xx](?![0-9])", re.ASCII)
# Digit groups joined by one space or dash: card numbers as people type them.
_CARD_RUN = re.compile(_NUMBER_START + r"[0-9]++(?:[ \-][0-9]++)*+", re.ASCII)
# Digit groups joined by one space, dot or dash, with optional parentheses around
# a group and an optional leading "+". Which runs are phone numbers is decided
# per group by `_is_phone_number`.
_PHONE_RUN = re.compile(
    r"(?:(?<![0-9])\+?\([0-9]{1,5}\)|(?<![0-9])\+[0-9]++"
    r"|" + _NUMBER_START + r"[0-9]++)"
    r"(?:[ .\-]?\([0-9]{1,5}\)|(?<=\))[ .\-]?[0-9]++|[ .\-][0-9]++)*+",
    re.ASCII,
)
_DIGIT_GROUP = re.compile(r"[0-9]+", re.ASCII)

# A Chinese mobile number: 11 digits from 13..19, optionally after country code 86.
_CN_MOBILE = re.compile(r"(?:0086|86)?1[3-9][0-9]{9}", re.ASCII)

# Maximum digits in one candidate number. ISO/IEC 7812 card numbers have at most
# 19 digits, and E.164 phone numbers have at most 15 after a "00" prefix.
_MAX_RUN_DIGITS = 19

# Total IBAN length per country code, as published in the ISO 13616 IBAN registry.
# NOTE: the registry gains countries every year. A country code missing here is
# still accepted when the mod-97 check passes, at a length cut on a space.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_MIN_LENGTH = 15
_IBAN_MAX_LENGTH = 34

# GB 11643-1999: weights of the first 17 digits, and the check character for
# each remainder of the weighted sum modulo 11.
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK_CHARACTERS = "10X98765432"


@dataclass(frozen=True)
class _DigitGroup:
    start: int
    end: int
    digits: str


def _fold_to_ascii(text: str) -> str:
    return text.translate(_ASCII_FOLDING)


def _find_pii_spans(folded: str) -> list[_Span]:
    """Find every PII span, giving earlier kinds priority where spans overlap."""
    occupied = bytearray(len(folded))
    spans: list[_Span] = []

    def is_free(start: int, end: int) -> bool:
        return occupied.find(1, start, end) == -1

    finders: tuple[tuple[PiiKind, Callable[[], Iterator[tuple[int, int]]]], ...] = (
        ("EMAIL", lambda: _find_emails(folded)),
        ("IBAN", lambda: _find_ibans(folded)),
        ("ID_CN", lambda: _find_cn_ids(folded)),
        ("CARD", lambda: _find_in_runs(folded, _CARD_RUN, _CARD_RULE, is_free)),
        ("PHONE", lambda: _find_in_runs(folded, _PHONE_RUN, _PHONE_RULE, is_free)),
    )
    for kind, find in finders:
        for start, end in find():
            if is_free(start, end):
                occupied[start:end] = b"\x01" * (end - start)
                spans.append(_Span(start, end, kind))
    spans.sort(key=lambda span: span.start)
    return spans


def _find_emails(folded: str) -> Iterator[tuple[int, int]]:
    for match in _EMAIL.finditer(folded):
        yield match.span()
    if "@" in folded and not folded.isascii():
        for match in _EMAIL_UNICODE.finditer(folded):
            if not match.group().isascii():
                yield match.span()


def _find_ibans(folded: str) -> Iterator[tuple[int, int]]:
    for match in _IBAN_CANDIDATE.finditer(folded):
        length = _valid_iban_length(match.group(1))
        if length is None:
            continue
        end = match.start(1) + length
        # The candidate stops after 34 characters, which can be inside a longer word.
        if end < len(folded) and folded[end].isascii() and folded[end].isalnum():
            continue
        yield match.start(1), end


def _valid_iban_length(candidate: str) -> int | None:
    """Return how many characters of `candidate` form a valid IBAN, or None."""
    # Offsets in `candidate` just past each character that is not a space.
    ends = [index + 1 for index, char in enumerate(candidate) if char != " "]
    compact = candidate.replace(" ", "").upper()
    country = compact[:2]
    if country in _IBAN_LENGTHS:
        lengths = [_IBAN_LENGTHS[country]]
    else:
        # Unknown country: try each cut at a space, longest first.
        lengths = [len(compact)] + [
            count for count in range(len(compact) - 1, 0, -1) if ends[count] > ends[count - 1] + 1
        ]
    for length in lengths:
        if not _IBAN_MIN_LENGTH <= length <= min(len(compact), _IBAN_MAX_LENGTH):
            continue
        # The IBAN must end where the candidate ends or at a space.
        ends_at_boundary = length == len(compact) or ends[length] > ends[length - 1] + 1
        if ends_at_boundary and _passes_iban_check(compact[:length]):
            return ends[length - 1]
    return None


def _passes_iban_check(iban: str) -> bool:
    """Return whether `iban` passes the ISO 13616 mod-97 check."""
    rearranged = iban[4:] + iban[:4]
    # Letters count as two-digit numbers: A is 10, B is 11, ... Z is 35.
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return int(digits) % 97 == 1


def _find_cn_ids(folded: str) -> Iterator[tuple[int, int]]:
    for match in _CN_ID.finditer(folded):
        if _is_cn_id(match.group(0).replace(" ", "").upper()):
            yield match.span()


def _is_cn_id(number: str) -> bool:
    """Return whether an 18-character number has a valid birth date and check character."""
    total = sum(int(digit) * weight for digit, weight in zip(number, _CN_ID_WEIGHTS, strict=False))
    if _CN_ID_CHECK_CHARACTERS[total % 11] != number[17]:
        return False
    try:
        birth_date = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return birth_date.year >= 1900


def _find_in_runs(
    folded: str,
    run_pattern: re.Pattern[str],
    rule: _RunRule,
    is_free: Callable[[int, int], bool],
) -> Iterator[tuple[int, int]]:
    """Find PII in runs of digit groups, trying the longest group sequence first.

    A run such as "13812345678 2024" can hold a number followed by an unrelated
    one, so every sequence of consecutive groups is a candidate.
    """
    for run in run_pattern.finditer(folded):
        groups = [
            _DigitGroup(run.start() + match.start(), run.start() + match.end(), match.group(0))
            for match in _DIGIT_GROUP.finditer(run.group(0))
        ]
        # A last group glued to a letter is part of a word such as "5678abc".
        if run.end() < len(folded) and folded[run.end()].isascii() and folded[run.end()].isalnum():
            groups.pop()
        first = 0
        while first < len(groups):
            span, last = _longest_accepted(folded, groups, first, rule, is_free)
            if span is None:
                first += 1
                continue
            yield span
            first = last + 1


def _longest_accepted(
    folded: str,
    groups: Sequence[_DigitGroup],
    first: int,
    rule: _RunRule,
    is_free: Callable[[int, int], bool],
) -> tuple[tuple[int, int] | None, int]:
    """Return the longest accepted span that starts at group `first`, and its last group."""
    best: tuple[tuple[int, int] | None, int] = (None, first)
    digits = ""
    for last in range(first, len(groups)):
        digits += groups[last].digits
        if len(digits) > _MAX_RUN_DIGITS or not is_free(groups[first].start, groups[last].end):
            break
        if len(digits) < rule.min_digits:
            continue
        span = rule.accept(folded, groups[first : last + 1], digits)
        if span is not None:
            best = (span, last)
    return best


def _card_span(folded: str, groups: Sequence[_DigitGroup], digits: str) -> tuple[int, int] | None:
    """Accept a payment card number: 13 to 19 digits that pass the Luhn check.

    The first digit must be 2 to 6, the ISO/IEC 7812 major industry identifiers of
    the card networks (2 and 5 Mastercard, 3 Amex, JCB and Diners, 4 Visa, 6
    Discover and UnionPay). This keeps out numbers such as "0086 138 1234 5678".
    """
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return None
    if not _passes_luhn(digits):
        return None
    return groups[0].start, groups[-1].end


def _passes_luhn(digits: str) -> bool:
    """Return whether a digit string passes the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _phone_span(folded: str, groups: Sequence[_DigitGroup], digits: str) -> tuple[int, int] | None:
    """Accept a phone number and return its span, widened to a leading "+" or "("."""
    start, end = groups[0].start, groups[-1].end
    # An area code in parentheses, "(010) 1234 5678", takes its "(" into the span.
    # The ")" of a last group stays out, as in "(call 13812345678)".
    if len(groups) > 1 and _is_parenthesized(folded, groups[0]):
        start -= 1
    has_plus = start > 0 and folded[start - 1] == "+"
    if not _is_phone_number(groups, digits, has_plus=has_plus):
        return None
    return (start - 1 if has_plus else start), end


class _RunRule(NamedTuple):
    """How to accept a sequence of digit groups as one kind of PII."""

    min_digits: int
    accept: Callable[[str, Sequence[_DigitGroup], str], tuple[int, int] | None]


_CARD_RULE = _RunRule(min_digits=13, accept=_card_span)
_PHONE_RULE = _RunRule(min_digits=8, accept=_phone_span)


def _is_parenthesized(folded: str, group: _DigitGroup) -> bool:
    return (
        group.start > 0
        and folded[group.start - 1] == "("
        and group.end < len(folded)
        and folded[group.end] == ")"
    )


def _is_phone_number(groups: Sequence[_DigitGroup], digits: str, *, has_plus: bool) -> bool:
    """Decide whether digit groups form a phone number.

    Accepted forms:

    - international numbers after "+" or "00", with 8 to 15 digits (E.164);
    - Chinese mobile numbers, 1[3-9] and 9 more digits, after an optional 86;
    - national numbers with a trunk "0" written in groups, with 9 to 12 digits
      (010-12345678, 020 7946 0958, 01 23 45 67 89);
    - North American numbers written in groups of 3-3-4 or 1-3-3-4.
    """
    lengths = [len(group.digits) for group in groups]
    if has_plus:
        return 8 <= len(digits) <= 15
    if _CN_MOBILE.fullmatch(digits):
        return True
    if len(groups) < 2 or _looks_like_date(lengths):
        return False
    if digits.startswith("00"):
        return digits[2] != "0" and 8 <= len(digits) - 2 <= 15
    if digits.startswith("0"):
        return 9 <= len(digits) <= 12 and 2 <= lengths[0] <= 5
    return lengths == [3, 3, 4] or (lengths == [1, 3, 3, 4] and digits[0] == "1")


def _looks_like_date(lengths: Sequence[int]) -> bool:
    """Return whether groups start like a date: d.m.yyyy, m-d-yyyy or yyyy-m-d."""
    if len(lengths) < 3:
        return False
    first, second, third = lengths[:3]
    return (first <= 2 and second <= 2 and third == 4) or (
        first == 4 and second <= 2 and third <= 2
    )


def _replace_spans(text: str, spans: Sequence[_Span]) -> MaskedText:
    """Build the masked text, numbering placeholders per kind in text order."""
    reserved = {match.group(0) for match in _PLACEHOLDER.finditer(text)}
    counters = dict.fromkeys(get_args(PiiKind), 0)
    placeholders: dict[tuple[PiiKind, str], str] = {}
    pieces: list[str] = []
    entities: list[PiiEntity] = []
    cursor = 0
    masked_length = 0
    for span in spans:
        value = text[span.start : span.end]
        placeholder = placeholders.get((span.kind, value))
        if placeholder is None:
            placeholder = _next_placeholder(span.kind, counters, reserved)
            placeholders[span.kind, value] = placeholder
        before = text[cursor : span.start]
        masked_length += len(before)
        pieces += [before, placeholder]
        entities.append(
            PiiEntity(
                kind=span.kind,
                placeholder=placeholder,
                value=value,
                start=masked_length,
                end=masked_length + len(placeholder),
            )
        )
        masked_length += len(placeholder)
        cursor = span.end
    pieces.append(text[cursor:])
    return MaskedText(text="".join(pieces), entities=tuple(entities))


def _next_placeholder(kind: PiiKind, counters: dict[PiiKind, int], reserved: set[str]) -> str:
    while True:
        counters[kind] += 1
        placeholder = f"[{kind}_{counters[kind]}]"
        if placeholder not in reserved:
            return placeholder


# ---------------------------------------------------------------------------
# Encrypted storage of the original values.
# ---------------------------------------------------------------------------


class PiiVault:
    """Encrypt masked values for storage, and decrypt them for the agent's view.

    The Fernet key comes from the environment variable ``DIPTYCH_SUPPORT__PII_KEY``
    when it is set. Otherwise it is read from ``<home>/keys/pii.key``, which is
    created with mode 0600 on first use. Tokens sealed under one key open only
    with that key, so the key must be kept and backed up with the database.

    Args:
        key: A Fernet key to use instead of the environment and the key file.

    Raises:
        ConfigurationError: If the key from `key`, the environment or the key file
            is not a valid Fernet key.
    """

    def __init__(self, key: str | bytes | None = None) -> None:
        if key is not None:
            self._key_source = "the `key` argument"
            self._fernet = _build_fernet(key, source=self._key_source)
        elif PII_KEY_VARIABLE in os.environ:
            self._key_source = f"the environment variable {PII_KEY_VARIABLE}"
            self._fernet = _build_fernet(os.environ[PII_KEY_VARIABLE], source=self._key_source)
        else:
            path = get_settings().home / "keys" / "pii.key"
            self._key_source = f"the key file {path}"
            self._fernet = _build_fernet(_load_or_create_key_file(path), source=self._key_source)

    def seal(self, entities: Iterable[PiiEntity]) -> str:
        """Encrypt entities into a token to store with the masked ticket.

        Args:
            entities: The entities from `mask_pii`.

        Returns:
            A URL-safe ASCII token that `open` turns back into the entities.
        """
        payload = [
            {
                "kind": entity.kind,
                "placeholder": entity.placeholder,
                "value": entity.value,
                "start": entity.start,
                "end": entity.end,
            }
            for entity in entities
        ]
        plaintext = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return self._fernet.encrypt(plaintext).decode("ascii")

    def open(self, token: str) -> list[PiiEntity]:
        """Decrypt a token made by `seal`.

        Args:
            token: The token from `seal`.

        Returns:
            The sealed entities, in their original order.

        Raises:
            TypeError: If `token` is not a str.
            DataError: If `token` is not a sealed PII token.
            ConfigurationError: If the token was sealed with another key, which
                means the PII key changed since it was sealed.
        """
        if not isinstance(token, str):
            raise TypeError(f"`token` must be a str, got {type(token).__name__}.")
        if not _is_fernet_token(token):
            raise DataError(
                "`token` is not a sealed PII token; pass the exact string that "
                "`PiiVault.seal` returned."
            )
        try:
            plaintext = self._fernet.decrypt(token.encode("ascii"))
        except InvalidToken:
            raise ConfigurationError(
                f"cannot open the sealed PII token with the key from {self._key_source}: "
                "the PII key changed since the token was sealed. Restore the key that was "
                "in use then; tokens sealed with a lost key cannot be recovered."
            ) from None
        return _parse_entities(plaintext)


def _build_fernet(key: str | bytes, *, source: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        # The key is a secret: the message gives its length, never its value.
        raise ConfigurationError(
            f"the PII key from {source} is not a valid Fernet key: it must be 32 "
            f"url-safe base64-encoded bytes (44 characters), got {len(key)} characters; "
            f"{_KEY_HELP}"
        ) from None


def _load_or_create_key_file(path: Path) -> bytes:
    """Read the key file, creating it with a new key and mode 0600 if it is missing."""
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Fernet.generate_key()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            # os.open applies the umask, which could leave the owner without read access.
            os.fchmod(file.fileno(), 0o600)
            file.write(key + b"\n")
            file.flush()
            os.fsync(file.fileno())
        # os.link fails when the file exists, so two processes that start at the
        # same time cannot overwrite each other's key: the second reads the first's.
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_key_file(path)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("pii vault: created key file %s", path)
    return key


def _read_key_file(path: Path) -> bytes:
    key = path.read_bytes().strip()
    mode = path.stat().st_mode & 0o777
    if os.name == "posix" and mode & 0o077:
        logger.warning(
            "pii vault: key file %s can be read by other users (mode %o); run chmod 600 on it",
            path,
            mode,
        )
    return key


def _is_fernet_token(token: str) -> bool:
    """Return whether `token` has the layout of a Fernet token."""
    try:
        data = base64.urlsafe_b64decode(token.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return False
    # Version byte 0x80, 8-byte timestamp, 16-byte IV, AES-CBC blocks of 16 bytes
    # and a 32-byte HMAC.
    fixed = 1 + 8 + 16 + 32
    return len(data) >= fixed + 16 and data[0] == 0x80 and (len(data) - fixed) % 16 == 0


def _parse_entities(plaintext: bytes) -> list[PiiEntity]:
    try:
        return [PiiEntity(**item) for item in json.loads(plaintext)]
    except (ValueError, TypeError) as exc:
        raise DataError(
            "the sealed PII token decrypted but does not contain a list of entities; "
            "it was not made by `PiiVault.seal`."
        ) from exc


# ---------------------------------------------------------------------------
# Logging.
# ---------------------------------------------------------------------------


class PiiRedactingFilter(logging.Filter):
    """Mask personal data in log records before handlers write them.

    A second line of defence: the code never logs customer text, but a library or
    an exception message might. The filter masks the formatted message, the
    formatted traceback and the stack, and it never drops a record. Attach it to
    handlers rather than loggers, because a logger's filters do not see records
    that come from its child loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask `record` in place and keep it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # The arguments do not fit the format; the handler reports that error.
            # Mask the template at least, in case it contains the data itself.
            if isinstance(record.msg, str):
                record.msg = mask_pii(record.msg).text
            return True
        masked = mask_pii(message).text
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text).text
        if record.stack_info:
            record.stack_info = mask_pii(record.stack_info).text
        return True
