"""Keyword search with BM25 (bm25s) over documents identified by database row ids.

bm25s builds a static index and has no incremental update, so `BM25Index` keeps
the tokens of every document and rebuilds the bm25s model on the first search
after an `add` or `remove`. A rebuild costs time in proportion to the stored
terms: 50,000 Banking77 texts (about 10 terms each) took 0.45 s on a 2-core CPU
with bm25s 0.3.16, so batch changes before searching on large indexes.

Text is split by `shared.retrieval._tokenize.tokenize`: Latin words and digits
as terms, and CJK characters as single characters plus bigrams.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from shared.errors import IndexMismatchError, RetrievalError
from shared.retrieval._arrays import as_id_array, as_text_list, check_top_k
from shared.retrieval._files import read_json_file, write_json_atomically
from shared.retrieval._tokenize import TOKENIZER_VERSION, tokenize

__all__ = ["BM25_FILE", "BM25Index"]

# bm25s sets its own logger to DEBUG when imported, which prints every index
# build in processes (such as Celery workers) that configure only the root level.
logging.getLogger("bm25s").setLevel(logging.WARNING)
logger = logging.getLogger(__name__)

BM25_FILE = "bm25.json"
FORMAT_VERSION = 1


class BM25Index:
    """BM25 keyword index with integer document ids and lazy rebuilds.

    Scores use the Lucene variant of BM25 (bm25s' default), so a document scores
    above 0 exactly when it contains at least one query term. Methods hold a lock,
    so one instance can serve several threads.

    Args:
        k1: Term-frequency saturation; 1.2 to 2.0 is usual.
        b: Document-length normalisation, from 0 (none) to 1 (full).
    """

    def __init__(self, *, k1: float = 1.5, b: float = 0.75) -> None:
        if not (math.isfinite(k1) and k1 >= 0):
            raise RetrievalError(f"`k1` must be a finite number >= 0, got {k1!r}.")
        if not (math.isfinite(b) and 0 <= b <= 1):
            raise RetrievalError(f"`b` must be between 0 and 1, got {b!r}.")
        self.k1 = float(k1)
        self.b = float(b)
        self._documents: dict[int, list[str]] = {}
        self._lock = threading.RLock()
        self._model: bm25s.BM25 | None = None
        self._model_ids = np.empty(0, dtype=np.int64)
        self._is_stale = False

    def __len__(self) -> int:
        return len(self._documents)

    def __contains__(self, document_id: object) -> bool:
        return isinstance(document_id, int | np.integer) and int(document_id) in self._documents

    def ids(self) -> np.ndarray:
        """Return the stored ids, sorted ascending."""
        with self._lock:
            return np.array(sorted(self._documents), dtype=np.int64)

    def add(self, ids: Iterable[int] | np.ndarray, texts: list[str]) -> None:
        """Tokenise and store `texts` under `ids`; a stored id gets the new text.

        Raises:
            RetrievalError: If the ids are not distinct integers >= 0, `texts` is not a
                list of strings, or the two lengths differ.
        """
        id_array = as_id_array(ids)
        items = as_text_list(texts)
        if len(id_array) != len(items):
            raise RetrievalError(
                f"`ids` and `texts` must have the same length, got {len(id_array)!r} ids "
                f"and {len(items)!r} texts."
            )
        tokens = [tokenize(text) for text in items]
        with self._lock:
            self._documents.update(zip(id_array.tolist(), tokens, strict=True))
            self._is_stale = self._is_stale or bool(len(id_array))

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Delete `ids`; ids that are not stored are ignored.

        Returns:
            The number of ids removed.
        """
        id_array = as_id_array(ids)
        with self._lock:
            removed = [value for value in id_array.tolist() if value in self._documents]
            for value in removed:
                del self._documents[value]
            self._is_stale = self._is_stale or bool(removed)
        return len(removed)

    def search(
        self, query: str, k: int, *, allowed_ids: Iterable[int] | None = None
    ) -> list[tuple[int, float]]:
        """Return up to `k` (id, score) pairs for documents sharing a term with `query`.

        Args:
            query: Free text in any of the supported languages.
            k: Maximum number of hits.
            allowed_ids: If given, only these ids can be returned.

        Returns:
            Hits sorted by descending score, ties in insertion order. Empty when the
            query has no indexable term or nothing matches.

        Raises:
            RetrievalError: If `query` is not a string or `k` is not a positive integer.
        """
        if not isinstance(query, str):
            raise RetrievalError(f"`query` must be a string, got {type(query).__name__}.")
        k = check_top_k(k)
        terms = list(dict.fromkeys(tokenize(query)))  # a repeated term counts once
        with self._lock:
            model = self._current_model()
            if model is None:
                return []
            known = [term for term in terms if term in model.vocab_dict]
            if not known:
                return []
            mask = None if allowed_ids is None else self._allowed_mask(allowed_ids)
            scores = np.asarray(model.get_scores(known, weight_mask=mask))
            ids = self._model_ids
        return _top_hits(scores, ids, k)

    def _current_model(self) -> bm25s.BM25 | None:
        if self._is_stale:
            self._rebuild()
        return self._model

    def _rebuild(self) -> None:
        started = time.perf_counter()
        self._model_ids = np.fromiter(self._documents, dtype=np.int64, count=len(self._documents))
        corpus = list(self._documents.values())
        if any(corpus):
            model = bm25s.BM25(k1=self.k1, b=self.b)
            model.index(corpus, show_progress=False)
            self._model = model
        else:
            # bm25s cannot index a corpus without a single term.
            self._model = None
        self._is_stale = False
        logger.debug(
            "bm25 rebuilt documents=%d seconds=%.3f",
            len(corpus),
            time.perf_counter() - started,
        )

    def _allowed_mask(self, allowed_ids: Iterable[int]) -> np.ndarray:
        try:
            allowed = np.fromiter(allowed_ids, dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise RetrievalError(
                f"`allowed_ids` must be an iterable of integer ids, got "
                f"{type(allowed_ids).__name__}: {exc}"
            ) from exc
        return np.isin(self._model_ids, allowed).astype(np.float32)

    def save(self, folder: str | Path) -> Path:
        """Write the tokens of every document to ``bm25.json`` in `folder`, atomically.

        Returns:
            The folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            data = {
                "format_version": FORMAT_VERSION,
                "tokenizer_version": TOKENIZER_VERSION,
                "k1": self.k1,
                "b": self.b,
                "documents": [[key, terms] for key, terms in self._documents.items()],
            }
            write_json_atomically(folder / BM25_FILE, data)
        logger.info("bm25 index saved folder=%s count=%d", folder, len(self))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, rebuild_command: str | None = None) -> BM25Index:
        """Load an index saved by `save`.

        Args:
            folder: The folder passed to `save`.
            rebuild_command: Command that rebuilds this index, appended to the
                tokenizer mismatch message.

        Raises:
            IndexMismatchError: If the index was tokenised by another tokenizer version.
            RetrievalError: If ``bm25.json`` is missing or malformed.
        """
        path = Path(folder) / BM25_FILE
        data = read_json_file(path, description="BM25 index file")
        _check_saved_versions(data, path, rebuild_command=rebuild_command)
        try:
            index = cls(k1=data["k1"], b=data["b"])
            documents = {
                int(key): [str(term) for term in terms] for key, terms in data["documents"]
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise RetrievalError(
                f"BM25 index file {str(path)!r} is malformed ({exc!r}). Rebuild the index."
            ) from exc
        index._documents = documents
        index._is_stale = True
        logger.info("bm25 index loaded folder=%s count=%d", path.parent, len(index))
        return index


def _check_saved_versions(data: dict[str, Any], path: Path, *, rebuild_command: str | None) -> None:
    if data.get("format_version") != FORMAT_VERSION:
        raise RetrievalError(
            f"BM25 index file {str(path)!r} has `format_version` "
            f"{data.get('format_version')!r}; this code reads version {FORMAT_VERSION}. "
            "Rebuild the index."
        )
    if data.get("tokenizer_version") != TOKENIZER_VERSION:
        command = f" with `{rebuild_command}`" if rebuild_command else ""
        raise IndexMismatchError(
            f"BM25 index file {str(path)!r} was tokenised with tokenizer version "
            f"{data.get('tokenizer_version')!r}, but the current tokenizer is version "
            f"{TOKENIZER_VERSION}. Queries would not match its terms, so rebuild the "
            f"index{command}."
        )


def _top_hits(scores: np.ndarray, ids: np.ndarray, k: int) -> list[tuple[int, float]]:
    matching = np.flatnonzero(scores > 0)
    # A stable sort on the negated scores keeps equal scores in insertion order.
    order = matching[np.argsort(-scores[matching], kind="stable")][:k]
    return [(int(ids[position]), float(scores[position])) for position in order]
