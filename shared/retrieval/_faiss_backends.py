"""The FAISS index kinds behind `VectorIndex`: flat (exact), IVF and HNSW.

Every kind scores by inner product. `VectorIndex` passes unit-length vectors, so a
score is the cosine similarity. The backends trust their input: `VectorIndex`
validates ids and vectors and never passes an id that is stored already.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import faiss
import numpy as np

from shared.errors import RetrievalError

__all__ = [
    "FaissBackend",
    "FlatBackend",
    "HNSWBackend",
    "IVFBackend",
    "IndexKind",
    "default_nlist",
    "default_nprobe",
    "empty_result",
]

IndexKind = Literal["flat", "ivf", "hnsw"]

# faiss' k-means prints a warning below 39 training points per centroid
# (`ClusteringParameters.min_points_per_centroid` in faiss 1.15).
_MIN_POINTS_PER_CENTROID = 39


def empty_result(rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return search output with no hits: scores -inf and ids -1, both (rows, k)."""
    return np.full((rows, k), -np.inf, dtype=np.float32), np.full((rows, k), -1, dtype=np.int64)


class FaissBackend(ABC):
    """One FAISS index kind: storage, removal and k-nearest-neighbour search by id."""

    kind: ClassVar[IndexKind]

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    @property
    def is_trained(self) -> bool:
        """Whether vectors can be added without training first."""
        return True

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store `vectors` (n, d) under `ids` (n,), none of which is stored yet."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Delete the stored `ids`."""

    @abstractmethod
    def search(
        self, vectors: np.ndarray, k: int, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return scores (n, k) and ids (n, k), with id -1 where a row has fewer hits.

        A `selector` restricts the hits to the ids it accepts.
        """

    @abstractmethod
    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """Return the stored vectors (m, d) of `ids`, all of which are stored."""

    @abstractmethod
    def stored_ids(self) -> np.ndarray:
        """Return every stored id, read back from the FAISS index."""

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Return the kind's settings, recorded in the index manifest."""

    @abstractmethod
    def write(self, path: Path) -> None:
        """Write the FAISS index to `path`."""


class FlatBackend(FaissBackend):
    """Exact search: every query is compared with every stored vector."""

    kind = "flat"

    def __init__(self, index: faiss.IndexIDMap2) -> None:
        super().__init__(index.d)
        self.index = index

    @classmethod
    def create(cls, dimension: int) -> FlatBackend:
        """Create an empty flat index."""
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        self.index.remove_ids(faiss.IDSelectorBatch(ids))

    def search(
        self, vectors: np.ndarray, k: int, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        params = None
        if selector is not None:
            params = faiss.SearchParameters()
            params.sel = selector
        scores, ids = self.index.search(vectors, k, params=params)
        return scores, ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.index.reconstruct_batch(ids))

    def stored_ids(self) -> np.ndarray:
        return np.asarray(faiss.vector_to_array(self.index.id_map), dtype=np.int64)

    def parameters(self) -> dict[str, Any]:
        return {}

    def write(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))


class IVFBackend(FaissBackend):
    """Inverted-file search: k-means cells trained on the first batch, `nprobe` cells searched.

    The FAISS index is created by the first `add`, because training needs vectors.
    A hash-table direct map lets it delete and reconstruct vectors by id.
    """

    kind = "ivf"

    def __init__(
        self,
        dimension: int,
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        index: faiss.IndexIVFFlat | None = None,
    ) -> None:
        super().__init__(dimension)
        self.index = index
        self.nlist = index.nlist if index is not None else nlist
        self._nprobe = nprobe

    @property
    def is_trained(self) -> bool:
        return self.index is not None

    @property
    def nprobe(self) -> int | None:
        """Cells searched per query; ``None`` until training picks the default."""
        return self.index.nprobe if self.index is not None else self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = value
        if self.index is not None:
            self.index.nprobe = value

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.index is None:
            self.index = self._train(vectors)
        self.index.add_with_ids(vectors, ids)

    def _train(self, vectors: np.ndarray) -> faiss.IndexIVFFlat:
        nlist = self.nlist or default_nlist(len(vectors))
        if len(vectors) < nlist:
            raise RetrievalError(
                f"An IVF index with `nlist` {nlist!r} needs at least {nlist} vectors in the "
                f"first `add` to train on, got {len(vectors)!r}. Add a larger first batch "
                f"(ideally {_MIN_POINTS_PER_CENTROID * nlist}), lower `nlist`, or use kind 'flat'."
            )
        quantizer = faiss.IndexFlatIP(self.dimension)
        index = faiss.IndexIVFFlat(quantizer, self.dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        index.nprobe = self._nprobe or default_nprobe(nlist)
        self.nlist = nlist
        return index

    def remove(self, ids: np.ndarray) -> None:
        if self.index is None:
            return
        # The hash-table direct map deletes only through an IDSelectorArray, which
        # points into `ids`, so `ids` must stay alive until remove_ids returns.
        ids = np.ascontiguousarray(ids)
        self.index.remove_ids(faiss.IDSelectorArray(ids))

    def search(
        self, vectors: np.ndarray, k: int, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.index is None:
            return empty_result(len(vectors), k)
        params = faiss.SearchParametersIVF()
        params.sel = selector
        params.nprobe = self.index.nprobe
        scores, ids = self.index.search(vectors, k, params=params)
        return scores, ids

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        if self.index is None:
            return np.empty((0, self.dimension), dtype=np.float32)
        return np.asarray(self.index.reconstruct_batch(ids))

    def stored_ids(self) -> np.ndarray:
        if self.index is None:
            return np.empty(0, dtype=np.int64)
        lists: Any = self.index.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
            for number in range(self.index.nlist)
            if lists.list_size(number)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def parameters(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "nprobe": self.nprobe}

    def write(self, path: Path) -> None:
        if self.index is None:
            raise RetrievalError(
                "An IVF index cannot be saved before its first `add`, because it is not "
                "trained yet. Add vectors first, or use kind 'flat'."
            )
        faiss.write_index(self.index, str(path))


class HNSWBackend(FaissBackend):
    """Graph search (HNSW) with tombstones, because FAISS cannot delete from an HNSW graph.

    `remove` sets the id of each deleted position to -1 in the IDMap2 id map, so the
    tombstones are saved with the index. Searches fetch `k` plus the number of
    tombstones and drop the -1 hits, so each row still gets up to `k` live ids.
    Deleted vectors stay in the graph and cost search time until `compacted` rebuilds it.
    """

    kind = "hnsw"

    def __init__(self, index: faiss.IndexIDMap2) -> None:
        super().__init__(index.d)
        self.index = index
        # Typed Any: faiss' bundled stubs (1.15) lack IndexHNSWFlat.hnsw.
        self._graph: Any = faiss.downcast_index(index.index)
        id_map = faiss.vector_to_array(index.id_map)
        self.tombstone_count = int((id_map < 0).sum())

    @classmethod
    def create(cls, dimension: int, *, m: int, ef_construction: int, ef_search: int) -> HNSWBackend:
        """Create an empty HNSW index with `m` links per node."""
        graph = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = ef_construction
        graph.hnsw.efSearch = ef_search
        return cls(faiss.IndexIDMap2(graph))

    @property
    def m(self) -> int:
        """Links per node on the upper layers (layer 0 has twice as many)."""
        return int(self._graph.hnsw.nb_neighbors(1))

    @property
    def ef_construction(self) -> int:
        """Candidate-list size used while inserting vectors."""
        return int(self._graph.hnsw.efConstruction)

    @property
    def ef_search(self) -> int:
        """Candidate-list size per query; larger is slower and finds more true neighbours."""
        return int(self._graph.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._graph.hnsw.efSearch = value

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        id_map = faiss.vector_to_array(self.index.id_map)
        deleted = np.isin(id_map, ids)
        id_map[deleted] = -1
        faiss.copy_array_to_vector(id_map, self.index.id_map)
        # IDMap2 keeps an id -> position hash map beside the id map; rebuild it to match.
        self.index.construct_rev_map()
        self.tombstone_count += int(deleted.sum())

    def search(
        self, vectors: np.ndarray, k: int, selector: faiss.IDSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if selector is not None:
            # A selector never accepts -1, so tombstones are skipped without over-fetching.
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.sel = selector
            params.efSearch = self.ef_search
            scores, ids = self.index.search(vectors, k, params=params)
            return scores, ids
        fetch = min(self.index.ntotal, k + self.tombstone_count)
        if fetch == 0:
            return empty_result(len(vectors), k)
        scores, ids = self.index.search(vectors, fetch)
        return _drop_tombstones(scores, ids, k)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.index.reconstruct_batch(ids))

    def stored_ids(self) -> np.ndarray:
        id_map = faiss.vector_to_array(self.index.id_map)
        return np.asarray(id_map[id_map >= 0], dtype=np.int64)

    def compacted(self) -> HNSWBackend:
        """Return a new HNSW index built from the live vectors only."""
        fresh = HNSWBackend.create(
            self.dimension,
            m=self.m,
            ef_construction=self.ef_construction,
            ef_search=self.ef_search,
        )
        id_map = faiss.vector_to_array(self.index.id_map)
        live = np.flatnonzero(id_map >= 0)
        if live.size:
            vectors = self._graph.reconstruct_n(0, self.index.ntotal)[live]
            fresh.add(id_map[live].astype(np.int64), np.ascontiguousarray(vectors))
        return fresh

    def parameters(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "tombstones": self.tombstone_count,
        }

    def write(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))


def _drop_tombstones(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    kept_scores, kept_ids = empty_result(len(ids), k)
    for row in range(len(ids)):
        live = np.flatnonzero(ids[row] >= 0)[:k]
        kept_scores[row, : live.size] = scores[row, live]
        kept_ids[row, : live.size] = ids[row, live]
    return kept_scores, kept_ids


def default_nlist(count: int) -> int:
    """Return an IVF cell count for `count` training vectors.

    About sqrt(count) cells, the usual starting point for up to a few million
    vectors, capped so that each cell gets 39 training points.
    """
    return max(1, min(round(math.sqrt(count)), count // _MIN_POINTS_PER_CENTROID))


def default_nprobe(nlist: int) -> int:
    """Return the default number of IVF cells searched per query.

    With 8 + nlist / 8 cells, all-MiniLM-L6-v2 embeddings of Banking77 reached
    recall@10 0.998 against exact search (nlist 100, nprobe 20; measured by
    `test_measure_recall_defaults_on_banking77`). Random vectors, which have no
    cluster structure, need far more cells for the same recall.
    """
    return max(1, min(nlist, 8 + nlist // 8))
