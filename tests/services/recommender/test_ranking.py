"""Profiles, candidates, the learned combination, MMR and reasons on synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

from services.recommender.behaviour import Catalogue, InteractionLog
from services.recommender.embeddings import build_item_index
from services.recommender.features import build_behaviour_features
from services.recommender.ranking import (
    REASONS,
    Combination,
    RecommenderModel,
    UserHistory,
    build_profiles,
    fit_combination,
    recommend_users,
    select_diverse,
)
from shared.settings import RecommenderSettings

ITEMS = 200
DIMENSION = 16


def _build_model(
    settings: RecommenderSettings | None = None,
) -> tuple[RecommenderModel, InteractionLog]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, DIMENSION))
    clusters = np.arange(ITEMS) % 10
    vectors = centres[clusters] + 0.3 * rng.standard_normal((ITEMS, DIMENSION))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    users = np.repeat(np.arange(50), 6)
    items = (users % 10) + 10 * rng.integers(0, ITEMS // 10, size=len(users))
    log = InteractionLog(
        users=users,
        items=items,
        values=np.full(len(users), 5.0),
        preferences=np.ones(len(users)),
        times=np.arange(len(users), dtype=float),
    )
    ids = np.arange(ITEMS, dtype=np.int64)
    catalogue = Catalogue(
        item_ids=ids,
        titles=[f"item {i}" for i in ids],
        texts=[f"item {i}" for i in ids],
        tags=[[f"genre {c}"] for c in clusters],
        created_at=np.full(ITEMS, np.nan),
    )
    settings = settings or RecommenderSettings()
    model = RecommenderModel(
        catalogue=catalogue,
        vectors=vectors,
        ranker_vectors=vectors,
        index=build_item_index(ids, vectors, embedding_model="test", settings=settings),
        behaviour=build_behaviour_features(
            log, catalogue, cut=1e6, neighbours_per_item=20, trend_window_days=1
        ),
        combination=Combination.prior(),
        settings=settings,
    )
    return model, log


def _history(log: InteractionLog, user: int) -> UserHistory:
    mask = log.users == user
    return UserHistory(
        rows=log.items[mask], preferences=log.preferences[mask], times=log.times[mask]
    )


def test_recommend_users_unseen_distinct_full() -> None:
    """Every list has N distinct items, none seen, each with a known reason."""
    model, log = _build_model()
    histories = [_history(log, user) for user in range(50)]
    for history, recommendations in zip(
        histories, recommend_users(model, histories, top_n=10), strict=True
    ):
        rows = [r.row for r in recommendations]
        assert len(rows) == 10
        assert len(set(rows)) == 10
        assert not set(rows) & set(history.rows.tolist())
        assert {r.reason for r in recommendations} <= set(REASONS)


def test_recommend_users_follows_history_cluster() -> None:
    """A user who liked one cluster gets mostly that cluster."""
    model, log = _build_model()
    history = _history(log, 3)
    rows = [r.row for r in recommend_users(model, [history], top_n=10)[0]]
    assert np.mean(np.array(rows) % 10 == 3) >= 0.5


def test_recommend_users_cold_start_and_query() -> None:
    """No history gives popular items; a query vector pulls its own cluster in."""
    model, _ = _build_model()
    popular = recommend_users(model, [UserHistory.empty()], top_n=5)[0]
    query = model.vectors[7]
    searched = recommend_users(model, [UserHistory.empty(query=query)], top_n=5)[0]
    assert len(popular) == 5
    assert {r.reason for r in popular} == {"popular"}
    assert np.mean([r.row % 10 == 7 for r in searched]) >= 0.6
    assert {r.reason for r in searched} == {"query"}


def test_recommend_users_everything_seen_gives_empty_list() -> None:
    """A user who has seen the whole catalogue gets an empty list, not an error."""
    model, _ = _build_model()
    everything = UserHistory(
        rows=np.arange(ITEMS),
        preferences=np.ones(ITEMS, dtype=np.int8),
        times=np.arange(ITEMS, dtype=float),
    )
    assert recommend_users(model, [everything], top_n=10) == [[]]


def test_build_profiles_dislike_pushes_away() -> None:
    """A disliked item moves the profile away from its vector."""
    model, _ = _build_model()
    liked = UserHistory(
        rows=np.array([0]), preferences=np.array([1], dtype=np.int8), times=np.array([1.0])
    )
    mixed = UserHistory(
        rows=np.array([0, 1]),
        preferences=np.array([1, -1], dtype=np.int8),
        times=np.array([1.0, 1.0]),
    )
    profiles = build_profiles(model.vectors, [liked, mixed, UserHistory.empty()], model.settings)
    assert profiles[1] @ model.vectors[1] < profiles[0] @ model.vectors[1]
    assert not profiles[2].any()


def test_select_diverse_prefers_dissimilar() -> None:
    """With a strong diversity weight the second pick avoids the first pick's twin."""
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    scores = np.array([1.0, 0.99, 0.9])
    assert select_diverse(vectors, scores, count=2, relevance_weight=1.0).tolist() == [0, 1]
    assert select_diverse(vectors, scores, count=2, relevance_weight=0.5).tolist() == [0, 2]


def test_fit_combination_learns_signal() -> None:
    """The learned weight is positive for the feature that predicts the label."""
    rng = np.random.default_rng(1)
    features = rng.standard_normal((400, 7))
    labels = (features[:, 2] > 0.5).astype(np.int8)
    combination = fit_combination(features, labels, seed=0)
    assert combination.is_learned
    assert combination.weights[2] > 1.0
    assert (
        Combination.from_dict(combination.to_dict()).weights.tolist()
        == combination.weights.tolist()
    )


def test_fit_combination_rejects_one_class() -> None:
    """Labels without a hit cannot teach weights."""
    with pytest.raises(ValueError, match="hits and misses"):
        fit_combination(np.zeros((5, 7)), np.zeros(5, dtype=np.int8), seed=0)


def test_large_catalogue_uses_approximate_index() -> None:
    """From `flat_threshold` items on, the settings' approximate kind is built."""
    model, _ = _build_model(RecommenderSettings(flat_threshold=100, large_index_kind="hnsw"))
    assert model.index.kind == "hnsw"


def test_settings_reject_crossed_thresholds() -> None:
    """The dislike threshold must stay below the like threshold."""
    with pytest.raises(ValueError, match="dislike_threshold"):
        RecommenderSettings(like_threshold=3.0, dislike_threshold=3.0)
