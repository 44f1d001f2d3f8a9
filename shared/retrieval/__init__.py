"""Retrieval: sentence embeddings, a FAISS vector index, BM25 and hybrid search.

`TextEmbedder` encodes text. `VectorIndex` (built by `build_vector_index`) stores
vectors under database row ids, with a manifest that names the embedding model.
`BM25Index` searches keywords in English, Chinese and mixed text. `HybridIndex`
combines the two with `reciprocal_rank_fusion`.
"""

from shared.retrieval.bm25 import BM25Index
from shared.retrieval.embedder import TextEmbedder, clear_embedder_cache, load_text_embedder
from shared.retrieval.fusion import reciprocal_rank_fusion
from shared.retrieval.hybrid import HybridIndex, SearchHit, TagMode
from shared.retrieval.index import IndexKind, VectorIndex, build_vector_index, measure_recall

__all__ = [
    "BM25Index",
    "HybridIndex",
    "IndexKind",
    "SearchHit",
    "TagMode",
    "TextEmbedder",
    "VectorIndex",
    "build_vector_index",
    "clear_embedder_cache",
    "load_text_embedder",
    "measure_recall",
    "reciprocal_rank_fusion",
]
