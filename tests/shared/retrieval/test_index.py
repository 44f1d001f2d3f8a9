"""Tests for `VectorIndex`: exact search, recall of the approximate kinds, updates, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import shared.retrieval.index as index_module
from shared.errors import IndexMismatchError, RetrievalError
from shared.retrieval import TextEmbedder, VectorIndex, build_vector_index, measure_recall
from tests.shared.retrieval.conftest import unit_vectors

KINDS = ["flat", "ivf", "hnsw"]
DIMENSION = 32
MODEL = "test-encoder@000000000000"


def _filled_index(kind: str, count: int = 400, *, seed: int = 0) -> tuple[VectorIndex, np.ndarray]:
    """Return an index of `kind` holding `count` random vectors under ids 1000, 1001, ..."""
    vectors = unit_vectors(count, DIMENSION, seed=seed)
    index = build_vector_index(DIMENSION, kind=kind, embedding_model=MODEL, nlist=8, nprobe=8)
    index.add(np.arange(1000, 1000 + count), vectors)
    return index, vectors


# Exact search


def test_search_flat_matches_numpy_brute_force() -> None:
    """Flat search returns the same ids and scores as a full numpy dot product."""
    index, vectors = _filled_index("flat", 300)
    queries = unit_vectors(20, DIMENSION, seed=1)

    scores, ids = index.search(queries, 10)

    similarities = queries @ vectors.T
    expected = np.argsort(-similarities, axis=1)[:, :10]
    np.testing.assert_array_equal(ids, expected + 1000)
    np.testing.assert_allclose(
        scores, np.take_along_axis(similarities, expected, axis=1), atol=1e-5
    )
    assert scores.dtype == np.float32
    assert ids.dtype == np.int64


def test_add_normalises_vectors_to_unit_length() -> None:
    """Vectors of any length are stored at unit length, so scores are cosine similarities."""
    index = build_vector_index(3, kind="flat")
    index.add([1, 2], [[3.0, 0.0, 0.0], [0.0, 0.5, 0.5]])

    scores, ids = index.search([[10.0, 0.0, 0.0]], 2)

    assert ids[0].tolist() == [1, 2]
    np.testing.assert_allclose(scores[0], [1.0, 0.0], atol=1e-6)


def test_search_pads_with_minus_one_when_fewer_hits() -> None:
    """A query with fewer stored vectors than `k` gets id -1 and score -inf in the rest."""
    index = build_vector_index(DIMENSION, kind="flat")
    index.add([5, 6], unit_vectors(2, DIMENSION, seed=2))

    scores, ids = index.search(unit_vectors(1, DIMENSION, seed=3), 4)

    assert sorted(ids[0, :2].tolist()) == [5, 6]
    assert ids[0, 2:].tolist() == [-1, -1]
    assert np.isneginf(scores[0, 2:]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_search_empty_index_returns_no_hits(kind: str) -> None:
    """Searching an index with nothing in it returns only -1 ids, for every kind."""
    index = build_vector_index(DIMENSION, kind=kind)

    scores, ids = index.search(unit_vectors(2, DIMENSION, seed=4), 3)

    assert ids.shape == (2, 3)
    assert (ids == -1).all()
    assert np.isneginf(scores).all()


# Approximate kinds against exact search


def test_measure_recall_ivf_against_flat() -> None:
    """IVF reaches recall@10 >= 0.9 against flat search on 5,000 random vectors."""
    vectors = unit_vectors(5000, DIMENSION, seed=5)
    queries = unit_vectors(200, DIMENSION, seed=6)
    ids = np.arange(5000)
    flat = build_vector_index(DIMENSION, kind="flat")
    flat.add(ids, vectors)
    # Random vectors have no cluster structure, so IVF needs more probes than on real
    # embeddings: the default nprobe (16 of 71 cells) reaches about 0.78 here.
    ivf = build_vector_index(DIMENSION, kind="ivf", nprobe=32)
    ivf.add(ids, vectors)

    recall = measure_recall(ivf, flat, queries, 10)

    assert recall >= 0.9
    assert recall <= 1.0


def test_measure_recall_hnsw_against_flat() -> None:
    """HNSW with the default settings reaches recall@10 >= 0.9 on 5,000 random vectors."""
    vectors = unit_vectors(5000, DIMENSION, seed=7)
    queries = unit_vectors(200, DIMENSION, seed=8)
    ids = np.arange(5000)
    flat = build_vector_index(DIMENSION, kind="flat")
    flat.add(ids, vectors)
    hnsw = build_vector_index(DIMENSION, kind="hnsw")
    hnsw.add(ids, vectors)

    assert measure_recall(hnsw, flat, queries, 10) >= 0.9


@pytest.mark.slow
def test_measure_recall_defaults_on_banking77(data_dir: Path, embedder: TextEmbedder) -> None:
    """Default IVF and HNSW settings reach recall@10 >= 0.95 on real sentence embeddings.

    Indexes the 10,003 Banking77 training texts and queries with the first 500 test
    texts. Embedding took 21 s on an idle 2-core CPU. Measured with faiss 1.15.1:
    IVF (nlist 100, nprobe 20) 0.998, HNSW (M 32, efSearch 64) 0.996.
    """

    def read_texts(name: str) -> list[str]:
        with (data_dir / "banking77" / name).open(encoding="utf-8", newline="") as file:
            return [row["text"] for row in csv.DictReader(file)]

    vectors = embedder.encode(read_texts("train.csv"), batch_size=128)
    queries = embedder.encode(read_texts("test.csv")[:500])
    ids = np.arange(len(vectors))
    flat = build_vector_index(embedder.dimension, kind="flat")
    flat.add(ids, vectors)

    for kind in ("ivf", "hnsw"):
        approximate = build_vector_index(embedder.dimension, kind=kind)
        approximate.add(ids, vectors)
        assert measure_recall(approximate, flat, queries, 10) >= 0.95, kind


def test_measure_recall_detects_wrong_results() -> None:
    """Recall drops below 1 when the index under test contains different vectors."""
    flat = build_vector_index(DIMENSION, kind="flat")
    flat.add(np.arange(100), unit_vectors(100, DIMENSION, seed=9))
    other = build_vector_index(DIMENSION, kind="flat")
    other.add(np.arange(100), unit_vectors(100, DIMENSION, seed=10))

    assert measure_recall(other, flat, unit_vectors(50, DIMENSION, seed=11), 5) < 0.5


def test_measure_recall_rejects_non_flat_reference() -> None:
    """The reference must be exact search, so an HNSW reference is rejected."""
    hnsw = build_vector_index(DIMENSION, kind="hnsw")

    with pytest.raises(RetrievalError, match="`reference_flat_index` must be kind 'flat'"):
        measure_recall(hnsw, hnsw, unit_vectors(1, DIMENSION, seed=12), 5)


# Updates


@pytest.mark.parametrize("kind", KINDS)
def test_remove_hides_ids_from_search(kind: str) -> None:
    """After `remove`, no search returns a removed id, even with `k` as large as the index."""
    index, vectors = _filled_index(kind, 300)
    removed = np.arange(1000, 1150)

    assert index.remove(removed) == 150

    _, ids = index.search(vectors[:150], 300)
    assert not np.isin(ids, removed).any()
    assert len(index) == 150
    assert 1000 not in index
    assert 1150 in index
    # Tombstones do not crowd live hits out: every row of a small k is full.
    _, top_ids = index.search(vectors[:150], 10)
    assert (top_ids >= 0).all()
    if kind != "hnsw":
        # Flat, and IVF probing all its 8 cells, are exhaustive: every survivor is found.
        assert set(ids[0][ids[0] >= 0].tolist()) == set(range(1150, 1300))


@pytest.mark.parametrize("kind", KINDS)
def test_remove_ignores_unknown_ids(kind: str) -> None:
    """Removing ids that are not stored changes nothing and counts zero."""
    index, _ = _filled_index(kind, 50)

    assert index.remove([5, 6]) == 0
    assert len(index) == 50


@pytest.mark.parametrize("kind", KINDS)
def test_add_existing_id_replaces_vector(kind: str) -> None:
    """Re-adding a stored id replaces its vector; the old vector is no longer found."""
    index, vectors = _filled_index(kind, 200)
    replacement = unit_vectors(1, DIMENSION, seed=13)

    index.add([1000], replacement)

    assert len(index) == 200
    scores, ids = index.search(replacement, 1)
    assert ids[0, 0] == 1000
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    _, old_ids = index.search(vectors[:1], 200)
    assert old_ids[0].tolist().count(1000) == 1
    assert old_ids[0, 0] != 1000


def test_remove_then_add_again_returns_new_vector_hnsw() -> None:
    """An HNSW id removed and added again is found by its new vector, once."""
    index, _ = _filled_index("hnsw", 100)
    index.remove([1000])
    replacement = unit_vectors(1, DIMENSION, seed=14)

    index.add([1000], replacement)

    _, ids = index.search(replacement, 100)
    assert ids[0, 0] == 1000
    assert ids[0].tolist().count(1000) == 1
    assert index.tombstone_count == 1


def test_compact_drops_hnsw_tombstones() -> None:
    """`compact` rebuilds the HNSW graph without removed vectors and keeps the live ones."""
    index, vectors = _filled_index("hnsw", 200)
    index.remove(np.arange(1000, 1100))

    dropped = index.compact()

    assert dropped == 100
    assert index.tombstone_count == 0
    assert len(index) == 100
    _, ids = index.search(vectors[100:110], 1)
    assert ids[:, 0].tolist() == list(range(1100, 1110))


@pytest.mark.parametrize("kind", KINDS)
def test_search_allowed_ids_matches_exact_subset(kind: str) -> None:
    """With `allowed_ids`, hits are the exact top-k among the allowed, stored ids only."""
    index, vectors = _filled_index(kind, 300)
    index.remove([1001])
    allowed = [1001, 1002, 1010, 1100, 1200, 5]
    queries = unit_vectors(5, DIMENSION, seed=15)

    scores, ids = index.search(queries, 3, allowed_ids=allowed)

    stored = np.array([1002, 1010, 1100, 1200])
    similarities = queries @ vectors[stored - 1000].T
    expected = stored[np.argsort(-similarities, axis=1)[:, :3]]
    np.testing.assert_array_equal(ids, expected)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("kind", KINDS)
def test_search_large_allowed_set_uses_faiss_selector(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the exact-subset limit, FAISS filters the hits: only allowed, live ids come back."""
    monkeypatch.setattr(index_module, "EXACT_SUBSET_LIMIT", 5)
    index, vectors = _filled_index(kind, 300)
    index.remove([1000, 1001])
    allowed = set(range(1000, 1100))

    _, ids = index.search(vectors[:10], 20, allowed_ids=allowed)

    found = ids[ids >= 0]
    assert found.size > 0
    assert set(found.tolist()) <= allowed - {1000, 1001}


def test_search_allowed_ids_empty_returns_no_hits() -> None:
    """An empty allowed set finds nothing instead of everything."""
    index, vectors = _filled_index("flat", 20)

    _, ids = index.search(vectors[:1], 3, allowed_ids=[])

    assert (ids == -1).all()


# Kinds and settings


def test_build_vector_index_auto_picks_kind_by_size() -> None:
    """`auto` builds flat below the threshold (or with no size) and HNSW from it on."""
    assert build_vector_index(8).kind == "flat"
    assert build_vector_index(8, expected_size=49_999).kind == "flat"
    assert build_vector_index(8, expected_size=50_000).kind == "hnsw"
    assert build_vector_index(8, expected_size=10, flat_threshold=10).kind == "hnsw"


def test_build_vector_index_rejects_unknown_kind() -> None:
    """An unknown kind names the allowed values."""
    with pytest.raises(RetrievalError, match="`kind` must be 'auto', 'flat', 'ivf' or 'hnsw'"):
        build_vector_index(8, kind="annoy")


def test_add_ivf_rejects_too_few_training_vectors() -> None:
    """An IVF index cannot train `nlist` cells on fewer vectors, and the error names the fix."""
    index = build_vector_index(DIMENSION, kind="ivf", nlist=50)

    with pytest.raises(RetrievalError, match="needs at least 50 vectors"):
        index.add(np.arange(10), unit_vectors(10, DIMENSION, seed=16))
    assert not index.is_trained
    assert len(index) == 0


def test_nprobe_setting_only_for_ivf() -> None:
    """`nprobe` belongs to IVF; setting it on a flat index is an error."""
    ivf, _ = _filled_index("ivf", 100)
    ivf.nprobe = 3
    assert ivf.nprobe == 3

    with pytest.raises(RetrievalError, match="`nprobe` applies only to kind 'ivf'"):
        build_vector_index(DIMENSION, kind="flat").nprobe = 3


# Save and load


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind: str, tmp_path: Path) -> None:
    """A loaded index returns the same hits and keeps its manifest fields."""
    index, vectors = _filled_index(kind, 300)
    index.remove([1005])
    expected_scores, expected_ids = index.search(vectors[:10], 5)

    index.save(tmp_path / "index")
    loaded = VectorIndex.load(
        tmp_path / "index", expected_model=MODEL, expected_dimension=DIMENSION
    )

    scores, ids = loaded.search(vectors[:10], 5)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    assert loaded.kind == kind
    assert len(loaded) == 299
    assert 1005 not in loaded
    assert loaded.created_at == index.created_at


def test_save_writes_manifest_fields(tmp_path: Path) -> None:
    """The manifest records the model, dimension, kind, count and metric."""
    index, _ = _filled_index("hnsw", 30)

    index.save(tmp_path)

    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == 1
    assert manifest["embedding_model"] == MODEL
    assert manifest["dimension"] == DIMENSION
    assert manifest["kind"] == "hnsw"
    assert manifest["count"] == 30
    assert manifest["metric"] == "inner_product"
    assert manifest["created_at"] <= manifest["updated_at"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["index.faiss", "manifest.json"]


def test_load_rejects_other_embedding_model(tmp_path: Path) -> None:
    """A model mismatch names both models and ends with the rebuild command."""
    index, _ = _filled_index("flat", 10)
    index.save(tmp_path)

    with pytest.raises(IndexMismatchError) as raised:
        VectorIndex.load(
            tmp_path,
            expected_model="bge-small-zh@111111111111",
            expected_dimension=DIMENSION,
            rebuild_command="diptych support reindex",
        )

    message = str(raised.value)
    assert repr(MODEL) in message
    assert "'bge-small-zh@111111111111'" in message
    assert message.endswith("rebuild the index with `diptych support reindex`.")


def test_load_rejects_other_dimension(tmp_path: Path) -> None:
    """Loading with another expected dimension names both dimensions."""
    index, _ = _filled_index("flat", 10)
    index.save(tmp_path)

    with pytest.raises(IndexMismatchError, match=r"dimension 32.*dimension 768.*rebuild the index"):
        VectorIndex.load(tmp_path, expected_model=MODEL, expected_dimension=768)


def test_load_without_expectations_skips_model_check(tmp_path: Path) -> None:
    """`None` expectations load any model's index."""
    index, _ = _filled_index("flat", 10)
    index.save(tmp_path)

    loaded = VectorIndex.load(tmp_path, expected_model=None, expected_dimension=None)

    assert loaded.embedding_model == MODEL


def test_load_detects_manifest_from_other_save(tmp_path: Path) -> None:
    """A manifest whose count differs from the FAISS file is rejected."""
    index, _ = _filled_index("flat", 10)
    index.save(tmp_path)
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["count"] = 11
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(RetrievalError, match="contains 10 vectors but its manifest records 11"):
        VectorIndex.load(tmp_path, expected_model=MODEL, expected_dimension=DIMENSION)


def test_load_missing_folder_raises(tmp_path: Path) -> None:
    """A folder without a manifest is reported as not found."""
    with pytest.raises(RetrievalError, match=r"index manifest .* not found"):
        VectorIndex.load(tmp_path / "absent", expected_model=None, expected_dimension=None)


def test_save_untrained_ivf_raises(tmp_path: Path) -> None:
    """An IVF index cannot be saved before training, and no file is left behind."""
    index = build_vector_index(DIMENSION, kind="ivf")

    with pytest.raises(RetrievalError, match="not trained yet"):
        index.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


# Input validation


@pytest.mark.parametrize(
    ("ids", "vectors", "message"),
    [
        ([1, 2], np.ones((2, 16)), "must have 32 columns .* got 16"),
        ([1, 2], np.ones((3, DIMENSION)), "same length, got 2 ids and 3 vectors"),
        ([1], np.ones(DIMENSION), "must be a 2-D array"),
        ([1, 2], [[np.nan] * DIMENSION, [1.0] * DIMENSION], "row 0 contains NaN or infinity"),
        ([1, 2], [[1.0] * DIMENSION, [np.inf] * DIMENSION], "row 1 contains NaN or infinity"),
        ([1], np.zeros((1, DIMENSION)), "row 0 is all zeros"),
        ([1, -2], np.ones((2, DIMENSION)), "must be >= 0, got -2"),
        ([3, 3], np.ones((2, DIMENSION)), "contains the id 3 more than once"),
        ([1.5, 2.0], np.ones((2, DIMENSION)), "must contain integer database row ids"),
        ([[1], [2]], np.ones((2, DIMENSION)), "must be a flat sequence of integers"),
    ],
)
def test_add_rejects_invalid_input(ids: object, vectors: object, message: str) -> None:
    """Invalid ids or vectors raise `RetrievalError` naming the problem, and nothing is added."""
    index = build_vector_index(DIMENSION, kind="flat")

    with pytest.raises(RetrievalError, match=message):
        index.add(ids, vectors)  # type: ignore[arg-type]
    assert len(index) == 0


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_search_rejects_invalid_k(k: object) -> None:
    """`k` must be a positive integer."""
    index, vectors = _filled_index("flat", 5)

    with pytest.raises(RetrievalError, match="`k` must be an integer >= 1"):
        index.search(vectors[:1], k)  # type: ignore[arg-type]


def test_search_rejects_wrong_query_dimension() -> None:
    """A query from another model (other dimension) is rejected with both sizes."""
    index, _ = _filled_index("flat", 5)

    with pytest.raises(RetrievalError, match=r"must have 32 columns .* got 384"):
        index.search(np.ones((1, 384)), 3)
