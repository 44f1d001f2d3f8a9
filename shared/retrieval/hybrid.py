"""Hybrid search: dense vectors and BM25 over the same documents, fused by RRF.

Dense retrieval finds paraphrases ("my card never came" for "card not
delivered"); BM25 finds exact terms the encoder handles poorly, such as product
codes and, with the English default encoder, Chinese words. Each search takes
the top `candidates` of both and fuses the two rankings with reciprocal rank
fusion. A document may carry a tag (an intent name, say) that a search can
require (``filter``) or favour (``boost``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.errors import IndexMismatchError, RetrievalError
from shared.retrieval._arrays import as_id_array, as_text_list, check_top_k
from shared.retrieval._files import read_json_file, write_json_atomically
from shared.retrieval.bm25 import BM25Index
from shared.retrieval.embedder import TextEmbedder
from shared.retrieval.fusion import DEFAULT_RRF_K, reciprocal_rank_fusion
from shared.retrieval.index import IndexKind, VectorIndex, build_vector_index

__all__ = ["TAGS_FILE", "HybridIndex", "SearchHit", "TagMode"]

logger = logging.getLogger(__name__)

TAGS_FILE = "tags.json"
FORMAT_VERSION = 1

TagMode = Literal["boost", "filter"]


@dataclass(frozen=True)
class SearchHit:
    """One document found by `HybridIndex.search`.

    Attributes:
        id: The document's database row id.
        score: Fused RRF score, multiplied by the tag boost where one applied.
        tag: The document's tag, or ``None``.
        vector_rank: 1-based rank among the dense candidates, or ``None`` if absent.
        bm25_rank: 1-based rank among the BM25 candidates, or ``None`` if absent.
    """

    id: int
    score: float
    tag: str | None
    vector_rank: int | None
    bm25_rank: int | None


class HybridIndex:
    """A `TextEmbedder`, a `VectorIndex` and a `BM25Index` kept in step over one document set.

    Args:
        embedder: Encodes documents and queries.
        vector_index: An index built with `embedder`; by default a new one from
            `build_vector_index` with `kind` and `expected_size`.
        bm25_index: A keyword index over the same ids; by default a new one.
        tags: Tag per document id, for indexes loaded from disk.
        kind: Vector index kind for a new vector index (see `build_vector_index`).
        expected_size: Expected document count for a new vector index.
        rrf_k: Rank offset of the fusion (see `reciprocal_rank_fusion`).
        fusion_weights: Weights of the dense and the BM25 ranking in the fusion. The
            default encoder was trained on English: in the Chinese test queries it
            ranked the right document as low as 8th while BM25 ranked it 1st, so a
            larger second weight can help Chinese-heavy document sets.

    Raises:
        IndexMismatchError: If `vector_index` was built with another embedding model.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        *,
        vector_index: VectorIndex | None = None,
        bm25_index: BM25Index | None = None,
        tags: Mapping[int, str] | None = None,
        kind: IndexKind | str = "auto",
        expected_size: int | None = None,
        rrf_k: int = DEFAULT_RRF_K,
        fusion_weights: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        if vector_index is None:
            vector_index = build_vector_index(
                embedder.dimension,
                kind=kind,
                expected_size=expected_size,
                embedding_model=embedder.name,
            )
        _check_embedder(vector_index, embedder)
        self.embedder = embedder
        self.vector_index = vector_index
        self.bm25_index = bm25_index if bm25_index is not None else BM25Index()
        self.rrf_k = rrf_k
        self.fusion_weights = fusion_weights
        # Fusing two empty rankings checks `rrf_k` and the weights once, here.
        reciprocal_rank_fusion([[], []], k=rrf_k, weights=fusion_weights)
        self._lock = threading.RLock()
        self._tags: dict[int, str] = {}
        self._tag_members: dict[str, set[int]] = {}
        for document_id, tag in (tags or {}).items():
            self._set_tag(int(document_id), tag)

    def __len__(self) -> int:
        return len(self.vector_index)

    def __contains__(self, document_id: object) -> bool:
        return document_id in self.vector_index

    def tag_of(self, document_id: int) -> str | None:
        """Return the tag of a document, or ``None`` if it has none or is not stored."""
        return self._tags.get(document_id)

    def add(
        self,
        ids: Iterable[int] | np.ndarray,
        texts: list[str],
        tags: Sequence[str | None] | None = None,
    ) -> None:
        """Embed and index `texts` under `ids`; a stored id gets the new text and tag.

        Args:
            ids: Distinct database row ids (>= 0).
            texts: One text per id.
            tags: One tag or ``None`` per id; ``None`` for all when omitted.

        Raises:
            RetrievalError: If the ids, texts or tags are invalid or their lengths differ.
        """
        id_array = as_id_array(ids)
        items = as_text_list(texts)
        if len(id_array) != len(items):
            raise RetrievalError(
                f"`ids` and `texts` must have the same length, got {len(id_array)!r} ids "
                f"and {len(items)!r} texts."
            )
        tag_list = _check_tags(tags, count=len(items))
        vectors = self.embedder.encode(items)
        with self._lock:
            self.vector_index.add(id_array, vectors)
            self.bm25_index.add(id_array, items)
            for document_id, tag in zip(id_array.tolist(), tag_list, strict=True):
                self._set_tag(document_id, tag)

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Delete `ids` from both indexes; ids that are not stored are ignored.

        Returns:
            The number of documents removed.
        """
        id_array = as_id_array(ids)
        with self._lock:
            removed = self.vector_index.remove(id_array)
            self.bm25_index.remove(id_array)
            for document_id in id_array.tolist():
                self._set_tag(document_id, None)
        return removed

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        tag: str | None = None,
        tag_mode: TagMode | str = "boost",
        tag_boost: float = 2.0,
        candidates: int = 50,
    ) -> list[SearchHit]:
        """Find the `k` documents that best match `query`.

        Args:
            query: Free text; an empty or whitespace-only query finds nothing.
            k: Maximum number of hits.
            tag: Tag to filter on or favour; ``None`` treats all documents alike.
            tag_mode: ``filter`` returns only documents tagged `tag`; ``boost``
                multiplies their fused score by `tag_boost` before the final sort.
            tag_boost: Factor for ``boost``, > 0.
            candidates: Hits taken from each of the dense and BM25 searches before
                fusion; raised to `k` when smaller.

        Returns:
            Hits by descending score.

        Raises:
            RetrievalError: If an argument is invalid.
        """
        return self.search_batch(
            [query], k=k, tag=tag, tag_mode=tag_mode, tag_boost=tag_boost, candidates=candidates
        )[0]

    def search_batch(
        self,
        queries: list[str],
        *,
        k: int = 5,
        tag: str | None = None,
        tag_mode: TagMode | str = "boost",
        tag_boost: float = 2.0,
        candidates: int = 50,
    ) -> list[list[SearchHit]]:
        """Run `search` for each query, embedding all queries in one batch.

        Returns:
            One hit list per query, in input order.

        Raises:
            RetrievalError: If an argument is invalid.
        """
        items = as_text_list(queries, name="queries")
        k = check_top_k(k)
        candidates = max(check_top_k(candidates, name="candidates"), k)
        _check_tag_arguments(tag, tag_mode, tag_boost)
        results: list[list[SearchHit]] = [[] for _ in items]
        active = [position for position, text in enumerate(items) if text.strip()]
        if not active or not len(self):
            return results
        vectors = self.embedder.encode([items[position] for position in active])
        with self._lock:
            allowed = None
            if tag is not None and tag_mode == "filter":
                allowed = self._tag_members.get(tag, set())
                if not allowed:
                    return results
            _, dense_ids = self.vector_index.search(vectors, candidates, allowed_ids=allowed)
            for row, position in enumerate(active):
                keyword_hits = self.bm25_index.search(
                    items[position], candidates, allowed_ids=allowed
                )
                dense = [int(value) for value in dense_ids[row] if value >= 0]
                keyword = [document_id for document_id, _ in keyword_hits]
                boosted = tag if tag_mode == "boost" else None
                results[position] = self._fuse(dense, keyword, boosted, tag_boost)[:k]
        return results

    def _fuse(
        self, dense: list[int], keyword: list[int], boosted_tag: str | None, tag_boost: float
    ) -> list[SearchHit]:
        vector_ranks = {document_id: rank for rank, document_id in enumerate(dense, start=1)}
        bm25_ranks = {document_id: rank for rank, document_id in enumerate(keyword, start=1)}
        hits = []
        fused = reciprocal_rank_fusion([dense, keyword], k=self.rrf_k, weights=self.fusion_weights)
        for document_id, score in fused:
            tag = self._tags.get(document_id)
            if boosted_tag is not None and tag == boosted_tag:
                score *= tag_boost
            hits.append(
                SearchHit(
                    id=document_id,
                    score=score,
                    tag=tag,
                    vector_rank=vector_ranks.get(document_id),
                    bm25_rank=bm25_ranks.get(document_id),
                )
            )
        # Stable, so equal scores keep the fusion order.
        hits.sort(key=lambda hit: -hit.score)
        return hits

    def _set_tag(self, document_id: int, tag: str | None) -> None:
        previous = self._tags.pop(document_id, None)
        if previous is not None:
            self._tag_members[previous].discard(document_id)
        if tag is not None:
            self._tags[document_id] = tag
            self._tag_members.setdefault(tag, set()).add(document_id)

    def save(self, folder: str | Path) -> Path:
        """Write the vector index, its manifest, the BM25 terms and ``tags.json`` into `folder`.

        Each file is replaced atomically, but not the set of files as a whole; `load`
        checks that they describe the same documents.

        Returns:
            The folder.
        """
        folder = Path(folder)
        with self._lock:
            self.vector_index.save(folder)
            self.bm25_index.save(folder)
            tags = [[document_id, tag] for document_id, tag in sorted(self._tags.items())]
            write_json_atomically(
                folder / TAGS_FILE, {"format_version": FORMAT_VERSION, "tags": tags}
            )
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path,
        embedder: TextEmbedder,
        *,
        rebuild_command: str | None = None,
        rrf_k: int = DEFAULT_RRF_K,
        fusion_weights: tuple[float, float] = (1.0, 1.0),
    ) -> HybridIndex:
        """Load an index saved by `save`, checking it was built with `embedder`.

        Args:
            folder: The folder passed to `save`.
            embedder: The encoder for queries and new documents.
            rebuild_command: Command that rebuilds the index, appended to mismatch errors.
            rrf_k: Rank offset of the fusion.
            fusion_weights: Weights of the dense and the BM25 ranking in the fusion.

        Raises:
            IndexMismatchError: If the index was built with another embedding model or
                dimension, or tokenised by another BM25 tokenizer version.
            RetrievalError: If a file is missing or damaged, or the files describe
                different document sets.
        """
        folder = Path(folder)
        vector_index = VectorIndex.load(
            folder,
            expected_model=embedder.name,
            expected_dimension=embedder.dimension,
            rebuild_command=rebuild_command,
        )
        bm25_index = BM25Index.load(folder, rebuild_command=rebuild_command)
        tags = _read_tags(folder / TAGS_FILE)
        _check_same_documents(folder, vector_index, bm25_index, tags)
        logger.info("hybrid index loaded folder=%s count=%d", folder, len(vector_index))
        return cls(
            embedder,
            vector_index=vector_index,
            bm25_index=bm25_index,
            tags=tags,
            rrf_k=rrf_k,
            fusion_weights=fusion_weights,
        )


def _check_embedder(vector_index: VectorIndex, embedder: TextEmbedder) -> None:
    if (
        vector_index.embedding_model != embedder.name
        or vector_index.dimension != embedder.dimension
    ):
        raise IndexMismatchError(
            f"The vector index was built with embedding model "
            f"{vector_index.embedding_model!r} and dimension {vector_index.dimension}, but "
            f"the embedder is {embedder.name!r} with dimension {embedder.dimension}. "
            "Vectors from different models cannot be compared, so rebuild the index."
        )


def _check_tags(tags: Sequence[str | None] | None, *, count: int) -> list[str | None]:
    if tags is None:
        return [None] * count
    if isinstance(tags, str) or not isinstance(tags, Sequence):
        raise RetrievalError(
            f"`tags` must be a list with one tag or None per text, got {type(tags).__name__}."
        )
    if len(tags) != count:
        raise RetrievalError(f"`tags` must have one entry per text ({count}), got {len(tags)!r}.")
    for position, tag in enumerate(tags):
        if tag is not None and not isinstance(tag, str):
            raise RetrievalError(
                f"`tags[{position}]` must be a string or None, got {type(tag).__name__} {tag!r}."
            )
    return list(tags)


def _check_tag_arguments(tag: str | None, tag_mode: str, tag_boost: float) -> None:
    if tag is not None and not isinstance(tag, str):
        raise RetrievalError(f"`tag` must be a string or None, got {type(tag).__name__}.")
    if tag_mode not in ("boost", "filter"):
        raise RetrievalError(f"`tag_mode` must be 'boost' or 'filter', got {tag_mode!r}.")
    if isinstance(tag_boost, bool) or not isinstance(tag_boost, int | float):
        raise RetrievalError(f"`tag_boost` must be a number > 0, got {tag_boost!r}.")
    if not (math.isfinite(tag_boost) and tag_boost > 0):
        raise RetrievalError(f"`tag_boost` must be a finite number > 0, got {tag_boost!r}.")


def _read_tags(path: Path) -> dict[int, str]:
    data: dict[str, Any] = read_json_file(path, description="tags file")
    try:
        if data["format_version"] != FORMAT_VERSION:
            raise ValueError(f"format_version {data['format_version']!r}")
        return {int(document_id): str(tag) for document_id, tag in data["tags"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise RetrievalError(
            f"Tags file {str(path)!r} is malformed or from another version ({exc}). "
            "Rebuild the index."
        ) from exc


def _check_same_documents(
    folder: Path, vector_index: VectorIndex, bm25_index: BM25Index, tags: Mapping[int, str]
) -> None:
    vector_ids = vector_index.ids()
    if not np.array_equal(vector_ids, bm25_index.ids()):
        raise RetrievalError(
            f"The vector index in {str(folder)!r} contains {len(vector_ids)} documents and the "
            f"BM25 index {len(bm25_index)}, or different ids, so the files come from "
            "different saves. Save the index again or rebuild the index."
        )
    untracked = sorted(set(tags) - set(vector_ids.tolist()))
    if untracked:
        raise RetrievalError(
            f"Tags file in {str(folder)!r} tags id {untracked[0]!r}, which is not in the "
            "index. Save the index again or rebuild the index."
        )
