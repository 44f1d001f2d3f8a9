"""Profiles, candidates, the learned combination, MMR and reasons on synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

from services.recommender.behaviour import Catalogue, InteractionLog
from services.recommender.embeddings import build_item_index
from services.recommender.features import build_behaviour_features
from services.recommender.ranking import (
    FEATURE_NAMES,
    REASONS,
    Combination,
    RecommenderModel,
    UserHistory,
    build_profiles,
    collect_training_rows,
    fit_combination,
    impute_new_item_features,
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


def _popularity_heavy(model: RecommenderModel, histories: list[UserHistory]) -> Combination:
    """Weights shaped like those learned on MovieLens, standardised over real candidates."""
    no_targets = [np.empty(0, dtype=np.int64)] * len(histories)
    features, _ = collect_training_rows(model, histories, no_targets)
    return Combination(
        weights=np.array([0.98, 0.0, 0.04, 0.49, 0.78, 0.05, 0.0]),
        bias=0.0,
        mean=features.mean(axis=0),
        scale=np.maximum(features.std(axis=0), 1e-6),
        is_learned=True,
    )


def _one_item(item_id: int, created_at: float = np.nan) -> Catalogue:
    return Catalogue(
        item_ids=np.array([item_id]),
        titles=["new"],
        texts=["new"],
        tags=[["genre 3"]],
        created_at=np.array([created_at]),
    )


def test_new_item_competes_on_its_vector() -> None:
    """An item added after the fit reaches a close user's list despite zero behaviour counts."""
    # Given popularity-heavy weights and a new item at the centre of user 3's likes
    model, log = _build_model()
    histories = [_history(log, user) for user in range(50)]
    model.combination = _popularity_heavy(model, histories)
    history = histories[3]
    centre = model.vectors[history.rows].mean(axis=0)
    centre = (centre / np.linalg.norm(centre))[None, :]

    # When it is added
    model.add_item(_one_item(ITEMS), centre, centre)
    reasons = {r.row: r.reason for r in recommend_users(model, [history], top_n=10)[0]}
    popular = [r.row for r in recommend_users(model, [UserHistory.empty()], top_n=10)[0]]

    # Then it is listed for the close user, as similar, but not among the popular items
    assert model.is_new.tolist() == [False] * ITEMS + [True]
    assert reasons.get(ITEMS) == "similar"
    assert ITEMS not in popular
    assert int(model.index.search(centre, 1)[1][0, 0]) == ITEMS


def test_new_item_imputation_only_touches_behaviour() -> None:
    """Behaviour columns of new candidates move to the weights' means; the rest stay."""
    model, log = _build_model()
    histories = [_history(log, user) for user in range(50)]
    model.combination = _popularity_heavy(model, histories)
    model.add_item(_one_item(ITEMS), model.vectors[:1], model.vectors[:1])
    candidates = np.array([0, ITEMS])
    features = np.arange(14, dtype=np.float64).reshape(2, 7)

    imputed = impute_new_item_features(model, candidates, features)

    behaviour = [FEATURE_NAMES.index(n) for n in ("knn", "knn_recent", "popularity", "trend")]
    assert imputed[0].tolist() == features[0].tolist()
    assert imputed[1, behaviour].tolist() == model.combination.mean[behaviour].tolist()
    for column in (FEATURE_NAMES.index("profile"), FEATURE_NAMES.index("age")):
        assert imputed[1, column] == features[1, column]


def test_is_new_follows_creation_time() -> None:
    """Items created at or after the behaviour cut are new; unknown creation times are not."""
    model, _ = _build_model()
    created = np.full(ITEMS, np.nan)
    created[:3] = [model.behaviour.cut - 1, model.behaviour.cut, model.behaviour.cut + 1]
    catalogue = Catalogue(
        item_ids=model.catalogue.item_ids,
        titles=model.catalogue.titles,
        texts=model.catalogue.texts,
        tags=model.catalogue.tags,
        created_at=created,
    )
    rebuilt = RecommenderModel(
        catalogue=catalogue,
        vectors=model.vectors,
        ranker_vectors=model.ranker_vectors,
        index=model.index,
        behaviour=model.behaviour,
        combination=model.combination,
        settings=model.settings,
    )
    assert np.flatnonzero(rebuilt.is_new).tolist() == [1, 2]
