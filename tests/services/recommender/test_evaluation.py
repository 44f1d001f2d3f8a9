"""The temporal split, its leakage guarantees on MovieLens, and the ranking metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from services.recommender import evaluation
from services.recommender.behaviour import InteractionLog
from services.recommender.catalogue import build_interaction_log
from services.recommender.evaluation import (
    build_bucket_models,
    measure_ranking,
    split_temporal,
)
from services.recommender.features import build_behaviour_features
from services.recommender.fitting import build_histories
from shared.retrieval import load_text_embedder
from shared.settings import get_settings


def _log(users: list[int], items: list[int], times: list[float]) -> InteractionLog:
    return InteractionLog(
        users=users,
        items=items,
        values=[4.0] * len(users),
        preferences=[1] * len(users),
        times=times,
    )


def test_split_temporal_cuts_each_user() -> None:
    """The last interactions (ties included) are the test part, the ones before validation."""
    log = _log([1] * 6 + [2] * 2, [1, 2, 3, 4, 5, 6, 1, 2], [1, 2, 3, 4, 5, 5, 1, 2])
    split = split_temporal(log, test_size=2, validation_size=2, buckets=1)
    assert split.test_cuts == {1: 5.0}
    assert split.validation_cuts == {1: 3.0}
    assert split.test_items[1].tolist() == [5, 6]
    assert split.validation_items[1].tolist() == [3, 4]
    assert split.buckets[0].cut == 3.0


def test_split_temporal_rejects_short_histories() -> None:
    """Without a user long enough to split, the error names what to lower."""
    with pytest.raises(ValueError, match="test_size"):
        split_temporal(_log([1, 1], [1, 2], [1, 2]), test_size=2, validation_size=2, buckets=1)


def test_measure_ranking_known_values() -> None:
    """Recall, NDCG, coverage and novelty on a hand-checked case."""
    lists = [np.array([0, 1, 2]), np.array([3, 4, 5])]
    targets = [np.array([1]), np.array([7, 8])]
    shares = [np.full(10, 0.5), np.full(10, 0.25)]
    metrics = measure_ranking(lists, targets, shares, catalogue_size=10)
    assert metrics["recall_at_10"] == pytest.approx(0.5)
    assert metrics["ndcg_at_10"] == pytest.approx((1 / math.log2(3)) / 2)
    assert metrics["coverage"] == pytest.approx(0.6)
    assert metrics["novelty"] == pytest.approx((1 + 2) / 2)


def _same_features(first, second) -> bool:  # type: ignore[no-untyped-def]
    difference = (first.similarity != second.similarity).nnz
    return (
        np.array_equal(first.popularity, second.popularity)
        and np.array_equal(first.trend, second.trend)
        and difference == 0
    )


def test_no_test_interaction_reaches_any_feature(
    data_dir: Path, reco_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On MovieLens, nothing at or after a user's cut feeds any history or feature of that user.

    Checked for every time bucket: the feature cut precedes every user's
    validation and test cut; counts and item-kNN are unchanged when every
    held-out interaction is removed or tripled; item texts hold no tag applied
    after the cut; the ranker sees only interactions before the cut; and no
    test interaction is in the history the user is scored with.
    """
    from pipelines.datasets import read_movielens

    # Given MovieLens and the split the evaluation uses
    settings = get_settings().recommender
    items, ratings = read_movielens(data_dir)
    log = build_interaction_log(
        ratings,
        like_threshold=settings.like_threshold,
        dislike_threshold=settings.dislike_threshold,
    )
    split = split_temporal(log, test_size=10, validation_size=5, buckets=settings.time_buckets)
    ranker_logs: list[float] = []

    def record_ranker_log(before, catalogue, **_):  # type: ignore[no-untyped-def]
        ranker_logs.append(float(before.times.max()))

    monkeypatch.setattr(evaluation, "fine_tune_ranker", record_ranker_log)

    # When the evaluation builds its per-bucket models
    built, _, _ = build_bucket_models(
        items,
        log,
        split,
        embedder=load_text_embedder(None),
        settings=settings,
        train_ranker=True,
        seed=1,
        work_dir=tmp_path,
    )

    # Then every feature was cut before every scored user's held-out part
    assert len(built) == len(split.buckets)
    for entry, ranker_last in zip(built, ranker_logs, strict=True):
        cut = entry.bucket.cut
        users = [int(u) for u in entry.bucket.users]
        assert entry.model.behaviour.cut == cut
        assert ranker_last < cut
        assert all(split.validation_cuts[u] >= cut for u in users)
        assert all(split.test_cuts[u] >= split.validation_cuts[u] for u in users)
        held_out = np.zeros(len(log), dtype=bool)
        for user_id in users:
            held_out |= (log.users == user_id) & (log.times >= split.validation_cuts[user_id])
        for variant in (log.select(~held_out), _tripled(log, held_out), log.before(cut)):
            rebuilt = build_behaviour_features(
                variant.before(cut),
                entry.model.catalogue,
                cut=cut,
                neighbours_per_item=settings.neighbours_per_item,
                trend_window_days=settings.trend_window_days,
            )
            assert _same_features(rebuilt, entry.model.behaviour)
        _assert_texts_before(items, entry.model.catalogue, cut)
        histories = build_histories(log, entry.model.catalogue, users, cuts=split.test_cuts)
        for user_id, history in zip(users, histories, strict=True):
            assert (history.times < split.test_cuts[user_id]).all()


def _tripled(log: InteractionLog, rows: np.ndarray) -> InteractionLog:
    return InteractionLog(
        users=np.r_[log.users, np.repeat(log.users[rows], 2)],
        items=np.r_[log.items, np.repeat(log.items[rows], 2)],
        values=np.r_[log.values, np.repeat(log.values[rows], 2)],
        preferences=np.r_[log.preferences, np.repeat(log.preferences[rows], 2)],
        times=np.r_[log.times, np.repeat(log.times[rows], 2)],
    )


def _assert_texts_before(items, catalogue, cut: float) -> None:  # type: ignore[no-untyped-def]
    texts = dict(zip(catalogue.item_ids.tolist(), catalogue.texts, strict=True))
    for record in items:
        early = {t.text.strip().lower() for t in record.tags if t.time is None or t.time < cut}
        late = {t.text.strip().lower() for t in record.tags if t.time is not None and t.time >= cut}
        text = texts[record.item_id]
        tag_part = text.split("tags: ", 1)[1] if "tags: " in text else ""
        shown = {tag for tag in tag_part.split(", ") if tag}
        assert not (shown & (late - early)), record.item_id


def test_behaviour_features_reject_late_interaction() -> None:
    """Features refuse a log that reaches the cut."""
    from services.recommender.catalogue import ItemRecord, build_catalogue

    catalogue = build_catalogue([ItemRecord(1, "a"), ItemRecord(2, "b")])
    with pytest.raises(ValueError, match="before the cut"):
        build_behaviour_features(
            _log([1], [1], [10.0]), catalogue, cut=10.0, neighbours_per_item=5, trend_window_days=1
        )


def test_item_knn_similarity_is_cosine() -> None:
    """Two items shared by both of their users have similarity 1; none with themselves."""
    from services.recommender.catalogue import ItemRecord, build_catalogue

    catalogue = build_catalogue([ItemRecord(i, str(i)) for i in (1, 2, 3)])
    log = _log([1, 1, 2, 2, 3], [1, 2, 1, 2, 3], [1, 2, 3, 4, 5])
    features = build_behaviour_features(
        log, catalogue, cut=6.0, neighbours_per_item=5, trend_window_days=1
    )
    dense = sparse.csr_matrix(features.similarity).toarray()
    assert dense[0, 1] == pytest.approx(1.0)
    assert dense[0, 0] == 0
    assert dense[2].sum() == 0
    assert features.popularity.tolist() == [2, 2, 1]
