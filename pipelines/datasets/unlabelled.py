"""Unlabelled in-domain text for domain-adaptive pretraining."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from pipelines.datasets._files import resolve_data_dir
from pipelines.datasets.banking77 import read_banking77
from pipelines.datasets.bitext import read_bitext
from pipelines.datasets.fiqa import read_fiqa
from pipelines.datasets.phrasebank import read_phrasebank
from pipelines.datasets.sentfin import read_sentfin
from pipelines.datasets.stocknet import read_stocknet_texts
from shared.data import deduplicate_texts
from shared.errors import DataError

__all__ = ["UNLABELLED_SOURCES", "read_unlabelled_texts"]

logger = logging.getLogger(__name__)


def _phrasebank_texts(data_dir: Path) -> list[str]:
    # Level "50" contains every sentence, because the stricter levels are subsets of it.
    return [example.text for example in read_phrasebank(data_dir, agreement="50")]


def _sentfin_texts(data_dir: Path) -> list[str]:
    # One text per headline: the reader returns a headline once per entity.
    headlines = {example.meta["headline_id"]: example.text for example in read_sentfin(data_dir)}
    return list(headlines.values())


def _fiqa_texts(data_dir: Path) -> list[str]:
    # One text per record: the reader returns a sentence once per target.
    sentences = {
        (example.meta["source"], example.meta["record_id"]): example.text
        for example in read_fiqa(data_dir)
    }
    return list(sentences.values())


def _bitext_texts(data_dir: Path) -> list[str]:
    texts: list[str] = []
    for example in read_bitext(data_dir):
        texts.extend((example.text, example.meta["response"]))
    return texts


def _banking77_train_texts(data_dir: Path) -> list[str]:
    train, _ = read_banking77(data_dir)
    return [example.text for example in train]


_TextReader = Callable[[Path], list[str]]

# Text sources of each domain, in the order their texts are returned.
UNLABELLED_SOURCES: Mapping[str, Mapping[str, _TextReader]] = MappingProxyType(
    {
        "financial": MappingProxyType(
            {
                "phrasebank": _phrasebank_texts,
                "sentfin": _sentfin_texts,
                "fiqa": _fiqa_texts,
                "stocknet": read_stocknet_texts,
            }
        ),
        "support": MappingProxyType(
            {
                "bitext": _bitext_texts,
                "banking77": _banking77_train_texts,
            }
        ),
    }
)


def read_unlabelled_texts(
    name: str,
    *,
    data_dir: Path | str | None = None,
    exclude: Iterable[str] = (),
    sources: Collection[str] | None = None,
) -> list[str]:
    """Collect the deduplicated in-domain texts of one domain.

    "financial" returns the Financial PhraseBank sentences (all agreement levels), the
    SEntFiN headlines, the FiQA sentences and the StockNet tweets. "support" returns the
    Bitext requests and agent responses and the Banking77 train texts. Texts are
    compared after `normalize_text`, and the first occurrence is kept unchanged.

    This function does not know which texts a later evaluation uses. The caller must
    pass the texts of every test split it evaluates on as `exclude`, or the pretraining
    text leaks into the evaluation.

    NOTE: PhraseBank is licensed for non-commercial use only and FiQA states no
    licence, so pass `sources` without them for a model that may be released.

    Args:
        name: The domain: "financial" or "support".
        data_dir: The folder of the data sets; None uses DIPTYCH_DATA_DIR.
        exclude: Texts to drop, such as the test splits' texts.
        sources: Names of the sources to read (see `UNLABELLED_SOURCES`); None reads all
            of the domain's sources.

    Returns:
        The texts in source order, then file order.

    Raises:
        TypeError: If `sources` is a single string.
        DataError: If `name` or a source name is unknown.
        DatasetNotFoundError: If the data folder or a file is missing.
    """
    readers = _select_sources(name, sources)
    folder = resolve_data_dir(data_dir)
    texts: list[str] = []
    for source, read_texts in readers.items():
        source_texts = read_texts(folder)
        logger.info("unlabelled: read %d texts from %s", len(source_texts), source)
        texts.extend(source_texts)

    kept = deduplicate_texts(texts, exclude=exclude)
    logger.info(
        "unlabelled: %s has %d distinct texts after dropping %d repeats and excluded texts",
        name,
        len(kept),
        len(texts) - len(kept),
    )
    return kept


def _select_sources(name: str, sources: Collection[str] | None) -> dict[str, _TextReader]:
    if name not in UNLABELLED_SOURCES:
        raise DataError(
            f"Unknown unlabelled-text domain `name`={name!r}; "
            f"use one of {', '.join(map(repr, UNLABELLED_SOURCES))}."
        )
    readers = UNLABELLED_SOURCES[name]
    if isinstance(sources, str):
        raise TypeError(f"`sources` must be a collection of names, got the string {sources!r}.")
    if sources is None:
        return dict(readers)
    unknown = sorted(set(sources) - set(readers))
    if unknown or not sources:
        raise DataError(
            f"`sources` must be a non-empty subset of {', '.join(map(repr, readers))} for "
            f"{name!r}, got {sorted(sources)!r}."
        )
    return {source: reader for source, reader in readers.items() if source in sources}
