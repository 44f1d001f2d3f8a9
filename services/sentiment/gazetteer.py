"""Entity linking: cashtags, tickers, company names and aliases, with offsets into the text.

The gazetteer is built from the entity lists that the public data sets ship:
SEntFiN's entity list with its surface forms and StockNet's ticker table.
The alias file in this package and an optional alias file of the user's
(`SentimentSettings.aliases_file`) add names, for example Chinese ones.

Matching rules:

- a cashtag (``$AMZN``, or ``$ amzn`` in pre-tokenised text) links when its
  symbol is known, in any letter case;
- a ticker-like alias (upper case, no spaces, such as ``PFOCUS``) links only
  where it appears in upper case, so ``ge`` in running text is not General
  Electric;
- any other alias links case-insensitively at word boundaries; aliases in
  Chinese, Japanese or Korean script link anywhere, since those scripts do not
  separate words with spaces.

Overlapping matches keep the longest; offsets are character offsets into the
original text.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import ahocorasick

from shared.errors import ConfigurationError, DataError

__all__ = [
    "EntityMatch",
    "EntityRecord",
    "Gazetteer",
    "build_gazetteer",
    "load_default_gazetteer",
    "read_alias_file",
]

logger = logging.getLogger(__name__)

MentionKind = Literal["cashtag", "ticker", "name", "given"]

PACKAGE_ALIASES = Path(__file__).with_name("aliases.csv")
_CASHTAG = re.compile(r"\$\s?([A-Za-z][A-Za-z0-9]{0,9}(?:[.\-][A-Za-z0-9]{1,4})?)")
_TICKER_LIKE = re.compile(r"[A-Z0-9][A-Z0-9.&\-]{1,11}")
_LEGAL_SUFFIX = re.compile(
    r"[\s,]+(inc|incorporated|corp|corporation|company|co|ltd|limited|plc|p\.l\.c|"
    r"holdings|group|s\.a|n\.v|ag|se)\.?\s*$",
    re.IGNORECASE,
)
# Latin aliases shorter than this are too ambiguous in running text ("ge", "bac").
_MIN_NAME_CHARS = 3


@dataclass(frozen=True)
class EntityRecord:
    """An entity: its symbol (the key stored with mentions), display name and aliases.

    When two entities share an alias, the one with the lower `priority` keeps
    it. An alias shared at the same priority is ambiguous and is not linked.
    """

    symbol: str
    name: str
    aliases: tuple[str, ...] = ()
    priority: int = 0


@dataclass(frozen=True)
class EntityMatch:
    """One linked mention: `text[start:end] == surface`."""

    entity: str
    surface: str
    start: int
    end: int
    kind: MentionKind


@dataclass
class _Alias:
    symbols: set[str] = field(default_factory=set)
    priority: int = 1_000_000
    is_ticker: bool = False


def _is_cjk(char: str) -> bool:
    return unicodedata.east_asian_width(char) in {"W", "F"} and char.isalpha()


def _fold(text: str) -> str:
    # Lower-case character by character, keeping a character whose lower case
    # has another length (such as U+0130), so offsets stay those of `text`.
    return "".join(lower if len(lower := char.lower()) == 1 else char for char in text)


def _is_word_char(char: str) -> bool:
    return char.isalnum() and not _is_cjk(char)


class Gazetteer:
    """Finds known entities in text with an Aho-Corasick automaton over all aliases."""

    def __init__(self, records: Iterable[EntityRecord]) -> None:
        self.records: dict[str, EntityRecord] = {}
        for record in records:
            self._add_record(record)
        self._aliases: dict[str, _Alias] = {}
        for record in self.records.values():
            for alias in (record.name, *record.aliases):
                self._add_alias(alias, record.symbol, record.priority)
        self._automaton = ahocorasick.Automaton()
        ambiguous = 0
        for key, entry in self._aliases.items():
            if len(entry.symbols) != 1:
                ambiguous += 1
                continue
            self._automaton.add_word(key, (key, next(iter(entry.symbols)), entry.is_ticker))
        if len(self._automaton):
            self._automaton.make_automaton()
        logger.info(
            "gazetteer built entities=%d aliases=%d ambiguous_skipped=%d",
            len(self.records),
            len(self._automaton),
            ambiguous,
        )

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self.records

    def _add_record(self, record: EntityRecord) -> None:
        symbol = record.symbol.strip().upper()
        if not symbol:
            return
        known = self.records.get(symbol)
        if known is None:
            self.records[symbol] = EntityRecord(
                symbol, record.name.strip(), tuple(record.aliases), record.priority
            )
            return
        # A later source adds aliases; the first display name stays, except that a
        # name equal to the bare symbol gives way to a real one.
        name = record.name.strip() if known.name == symbol and record.name.strip() else known.name
        aliases = tuple(dict.fromkeys((*known.aliases, *record.aliases)))
        priority = min(known.priority, record.priority)
        self.records[symbol] = EntityRecord(symbol, name, aliases, priority)

    def _add_alias(self, alias: str, symbol: str, priority: int) -> None:
        alias = " ".join(alias.split())
        if not alias:
            return
        is_ticker = bool(_TICKER_LIKE.fullmatch(alias)) and not any(_is_cjk(c) for c in alias)
        has_cjk = any(_is_cjk(c) for c in alias)
        if not is_ticker and not has_cjk and len(alias) < _MIN_NAME_CHARS:
            return
        key = alias if is_ticker else _fold(alias)
        entry = self._aliases.setdefault(key, _Alias(is_ticker=is_ticker))
        if priority < entry.priority:
            entry.symbols, entry.priority = {symbol}, priority
        elif priority == entry.priority:
            entry.symbols.add(symbol)

    def name_of(self, symbol: str) -> str:
        """Return the display name of `symbol`, or the symbol itself when it is unknown."""
        record = self.records.get(symbol.upper())
        return record.name if record and record.name else symbol

    def find(self, text: str) -> list[EntityMatch]:
        """Return the entities named in `text`, sorted by offset, one per position."""
        candidates = self._find_cashtags(text) + self._find_aliases(text)
        return _drop_overlaps(candidates)

    def _find_cashtags(self, text: str) -> list[EntityMatch]:
        matches = []
        for found in _CASHTAG.finditer(text):
            symbol = found.group(1).upper()
            if symbol in self.records:
                matches.append(
                    EntityMatch(symbol, found.group(0), found.start(), found.end(), "cashtag")
                )
        return matches

    def _find_aliases(self, text: str) -> list[EntityMatch]:
        if not len(self._automaton):
            return []
        folded = _fold(text)
        matches = []
        for haystack, want_ticker in ((text, True), (folded, False)):
            for end_index, (key, symbol, is_ticker) in self._automaton.iter(haystack):
                if is_ticker != want_ticker:
                    continue
                start, end = end_index - len(key) + 1, end_index + 1
                if not _at_word_boundaries(text, start, end, key):
                    continue
                kind: MentionKind = "ticker" if is_ticker else "name"
                matches.append(EntityMatch(symbol, text[start:end], start, end, kind))
        return matches

    def link_given(self, text: str, entities: Iterable[str]) -> list[EntityMatch]:
        """Return mentions for entities sent with an item, located in `text` where possible.

        A given entity that the text names gets the offsets of its first mention;
        one that it does not name gets ``start = end = -1`` and kind ``given``.
        """
        found = self.find(text)
        given = []
        for raw in entities:
            symbol = raw.strip().upper()
            if not symbol or any(match.entity == symbol for match in found):
                continue
            located = _locate(text, raw.strip()) or _locate(text, self.name_of(symbol))
            if located is None:
                given.append(EntityMatch(symbol, raw.strip(), -1, -1, "given"))
            else:
                start, end = located
                given.append(EntityMatch(symbol, text[start:end], start, end, "given"))
        return sorted(found + given, key=lambda match: (match.start, match.entity))


def _locate(text: str, surface: str) -> tuple[int, int] | None:
    if not surface:
        return None
    start = _fold(text).find(_fold(surface))
    return (start, start + len(surface)) if start >= 0 else None


def _at_word_boundaries(text: str, start: int, end: int, key: str) -> bool:
    if _is_cjk(key[0]) and _is_cjk(key[-1]):
        return True
    before_ok = start == 0 or not _is_word_char(text[start - 1]) or _is_cjk(key[0])
    after_ok = end == len(text) or not _is_word_char(text[end]) or _is_cjk(key[-1])
    return before_ok and after_ok


def _drop_overlaps(candidates: list[EntityMatch]) -> list[EntityMatch]:
    ordered = sorted(candidates, key=lambda m: (m.start, -(m.end - m.start), m.kind != "cashtag"))
    kept: list[EntityMatch] = []
    covered_until = -1
    for match in ordered:
        if match.start < covered_until:
            continue
        kept.append(match)
        covered_until = match.end
    return kept


def read_alias_file(path: Path, *, priority: int = 0) -> list[EntityRecord]:
    """Read a CSV of extra aliases: columns `symbol`, `name` and `aliases` (split at ``|``).

    Raises:
        DataError: The file is missing, is not UTF-8, or lacks a column.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(
            f"alias file {str(path)!r} not found; fix DIPTYCH_SENTIMENT__ALIASES_FILE."
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"alias file {str(path)!r} is not UTF-8 ({exc}); save it as UTF-8."
        ) from None
    reader = csv.DictReader(text.splitlines())
    missing = {"symbol", "name", "aliases"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(
            f"alias file {str(path)!r} lacks the column(s) {sorted(missing)}; the header "
            "must be `symbol,name,aliases`."
        )
    records = []
    for row in reader:
        aliases = tuple(a.strip() for a in (row["aliases"] or "").split("|") if a.strip())
        if (row["symbol"] or "").strip():
            name = (row["name"] or "").strip()
            records.append(EntityRecord(row["symbol"].strip(), name, aliases, priority))
    return records


def _stocknet_records(data_dir: Path) -> list[EntityRecord]:
    path = data_dir / "stocknet-tweets-subset" / "StockTable"
    records = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 3 or not parts[1].strip().startswith("$"):
            continue
        symbol, company = parts[1].strip()[1:], " ".join(parts[2].split())
        short = _LEGAL_SUFFIX.sub("", company).strip(" ,")
        aliases = [company, short]
        if short.lower().endswith(".com"):
            aliases.append(short[: -len(".com")])
        records.append(
            EntityRecord(symbol, short or company, tuple(dict.fromkeys(aliases)), priority=2)
        )
    return records


def _sentfin_records(data_dir: Path) -> list[EntityRecord]:
    from pipelines.datasets import read_sentfin_entities

    records = []
    for symbol, forms in read_sentfin_entities(data_dir):
        # SEntFiN also lists sectors and topics by common nouns ("stocks",
        # "lead", "bank"): 310 of its surface forms have no capital letter.
        # Linked in running text they would drown the companies, so only
        # forms with a capital letter (names such as "Prime Focus") are kept.
        names = tuple(form for form in forms if any(char.isupper() for char in form))
        if names:
            records.append(EntityRecord(symbol, names[0], names, priority=3))
    return records


def build_gazetteer(*, data_dir: Path | None, aliases_file: Path | None = None) -> Gazetteer:
    """Build the gazetteer from the data sets in `data_dir` and the alias files.

    A data set that is absent is skipped with a warning; the package's alias
    file always loads. A shared alias goes to the user's file first, then the
    package's file, StockNet and SEntFiN.
    """
    records: list[EntityRecord] = read_alias_file(PACKAGE_ALIASES, priority=1)
    if data_dir is not None:
        for reader, folder in ((_stocknet_records, "stocknet"), (_sentfin_records, "sentfin")):
            try:
                records += reader(data_dir)
            except (FileNotFoundError, DataError) as exc:
                logger.warning("gazetteer skips %s entities: %s", folder, exc)
    if aliases_file is not None:
        records += read_alias_file(aliases_file, priority=0)
    return Gazetteer(records)


@functools.cache
def _cached_gazetteer(data_dir: Path | None, aliases_file: Path | None) -> Gazetteer:
    return build_gazetteer(data_dir=data_dir, aliases_file=aliases_file)


def load_default_gazetteer() -> Gazetteer:
    """Return this process's gazetteer for the configured data folder and alias file."""
    from shared.settings import get_settings

    settings = get_settings()
    if (
        settings.sentiment.aliases_file is not None
        and not settings.sentiment.aliases_file.is_file()
    ):
        raise ConfigurationError(
            f"`sentiment.aliases_file` {str(settings.sentiment.aliases_file)!r} does not exist; "
            "fix DIPTYCH_SENTIMENT__ALIASES_FILE or unset it."
        )
    return _cached_gazetteer(settings.data_dir, settings.sentiment.aliases_file)
