"""Offline evaluation on a temporal split: the hybrid against three baselines.

Split. For each user with enough interactions, the last `test_size`
interactions in time are the test part; the `validation_size` before them are
the validation part. The user's test cut is the time of their first test
interaction (ties go to the test part) and their validation cut likewise.
Users are grouped by validation cut into `time_buckets` groups. A group's
features (item texts with their tags, popularity, trend, item-kNN, the
fine-tuned ranker) use only interactions strictly before the group's earliest
validation cut, so no feature counts anything at or after any of its users'
cuts. A user's own history for the test contains their interactions before their
test cut, and for validation those before their validation cut.

Methods. `popularity` ranks unseen items by interaction count; `item-knn`
by summed co-occurrence similarity to the history (then popularity where the
similarity runs out); `text-profile` by cosine to the embedding profile; and
`hybrid` is the full pipeline, with weights learned on the validation parts.

Metrics. Recall@k is the share of a user's test items found in their top k;
NDCG@10 uses binary gains; coverage is the share of catalogue items that
appear in any top 10; novelty is the mean self-information, -log2 of the share
of users who interacted with a recommended item before the cut.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.recommender.behaviour import InteractionLog
from services.recommender.catalogue import ItemRecord, build_catalogue
from services.recommender.fitting import build_histories, build_model
from services.recommender.ranker import fine_tune_ranker
from services.recommender.ranking import (
    Combination,
    RecommenderModel,
    UserHistory,
    collect_training_rows,
    compute_knn_scores,
    fit_combination,
    recommend_users,
)
from shared.retrieval import TextEmbedder
from shared.settings import RecommenderSettings

__all__ = [
    "METHODS",
    "EvaluationResult",
    "TemporalSplit",
    "TimeBucket",
    "build_bucket_models",
    "evaluate_methods",
    "measure_ranking",
    "split_temporal",
]

logger = logging.getLogger(__name__)

METHODS = ("popularity", "item-knn", "text-profile", "hybrid")
METRICS = ("recall_at_10", "recall_at_20", "ndcg_at_10", "coverage", "novelty")
LIST_LENGTH = 20


@dataclass(frozen=True)
class TimeBucket:
    """Users whose features are built from interactions before `cut`."""

    cut: float
    users: np.ndarray


@dataclass
class TemporalSplit:
    """Per-user cuts, the held-out items and the time buckets (see the module docstring)."""

    test_cuts: dict[int, float]
    validation_cuts: dict[int, float]
    test_items: dict[int, np.ndarray]
    validation_items: dict[int, np.ndarray]
    buckets: list[TimeBucket]


def split_temporal(
    log: InteractionLog, *, test_size: int, validation_size: int, buckets: int
) -> TemporalSplit:
    """Cut each user's timeline into history, validation and test parts.

    Users with fewer than `test_size + validation_size + 1` interactions are
    left out of the evaluation (their interactions still count as behaviour
    before the cuts).

    Raises:
        ValueError: If no user has enough interactions.
    """
    test_cuts: dict[int, float] = {}
    validation_cuts: dict[int, float] = {}
    test_items: dict[int, np.ndarray] = {}
    validation_items: dict[int, np.ndarray] = {}
    for user_id, positions in log.group_by_user().items():
        if len(positions) < test_size + validation_size + 1:
            continue
        times = log.times[positions]
        test_cut = float(times[-test_size])
        validation_cut = float(times[-test_size - validation_size])
        if validation_cut <= float(times[0]):
            continue
        test_cuts[user_id] = test_cut
        validation_cuts[user_id] = validation_cut
        test_items[user_id] = np.unique(log.items[positions[times >= test_cut]])
        in_validation = (times >= validation_cut) & (times < test_cut)
        validation_items[user_id] = np.unique(log.items[positions[in_validation]])
    if not test_cuts:
        raise ValueError(
            f"No user has more than {test_size + validation_size} interactions spread over "
            "time; lower `test_size` or `validation_size`."
        )
    users = np.array(sorted(validation_cuts, key=lambda u: (validation_cuts[u], u)))
    groups = np.array_split(users, min(buckets, len(users)))
    return TemporalSplit(
        test_cuts=test_cuts,
        validation_cuts=validation_cuts,
        test_items=test_items,
        validation_items=validation_items,
        buckets=[
            TimeBucket(cut=min(validation_cuts[int(u)] for u in group), users=group)
            for group in groups
        ],
    )


@dataclass
class EvaluationResult:
    """Metric values per method, the learned weights and timings."""

    metrics: dict[str, dict[str, float]]
    users: int
    combination: Combination
    ranker_seconds: float
    ranker_pairs: int
    seconds: float
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class _BucketModel:
    bucket: TimeBucket
    model: RecommenderModel
    users_train: int


def build_bucket_models(
    item_records: Sequence[ItemRecord],
    log: InteractionLog,
    split: TemporalSplit,
    *,
    embedder: TextEmbedder,
    settings: RecommenderSettings,
    train_ranker: bool,
    seed: int,
    work_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[_BucketModel], float, int]:
    """Build one model per time bucket from interactions before the bucket's cut."""
    built, ranker_seconds, ranker_pairs = [], 0.0, 0
    for number, bucket in enumerate(split.buckets):
        if progress is not None:
            progress(f"bucket {number + 1}/{len(split.buckets)}")
        catalogue = build_catalogue(item_records, cut=bucket.cut)
        before = log.before(bucket.cut)
        ranker = None
        if train_ranker:
            trained = fine_tune_ranker(
                before,
                catalogue,
                settings=settings,
                output_dir=work_dir / f"ranker-{number}",
                seed=seed,
            )
            if trained is not None:
                ranker = TextEmbedder.from_folder(
                    trained.model_dir, model_name=f"ranker-bucket-{number}"
                )
                ranker_seconds += trained.seconds
                ranker_pairs += trained.pairs
        model = build_model(
            catalogue, before, cut=bucket.cut, embedder=embedder, settings=settings, ranker=ranker
        )
        built.append(_BucketModel(bucket, model, len(np.unique(before.users))))
    return built, ranker_seconds, ranker_pairs


def evaluate_methods(
    item_records: Sequence[ItemRecord],
    log: InteractionLog,
    *,
    embedder: TextEmbedder,
    settings: RecommenderSettings,
    test_size: int = 10,
    train_ranker: bool = True,
    seed: int = 42,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Run the temporal split, learn the combination on validation and score every method."""
    started = time.perf_counter()
    split = split_temporal(
        log,
        test_size=test_size,
        validation_size=settings.validation_size,
        buckets=settings.time_buckets,
    )
    with tempfile.TemporaryDirectory(prefix="diptych-reco-eval-") as work:
        built, ranker_seconds, ranker_pairs = build_bucket_models(
            item_records,
            log,
            split,
            embedder=embedder,
            settings=settings,
            train_ranker=train_ranker,
            seed=seed,
            work_dir=Path(work),
            progress=progress,
        )
    combination = _learn_combination(built, log, split, seed=seed)
    metrics = _score_methods(built, log, split, combination)
    return EvaluationResult(
        metrics=metrics,
        users=sum(len(entry.bucket.users) for entry in built),
        combination=combination,
        ranker_seconds=ranker_seconds,
        ranker_pairs=ranker_pairs,
        seconds=time.perf_counter() - started,
        details={"buckets": [float(b.cut) for b in split.buckets]},
    )


def _score_methods(
    built: list[_BucketModel],
    log: InteractionLog,
    split: TemporalSplit,
    combination: Combination,
) -> dict[str, dict[str, float]]:
    lists: dict[str, list[np.ndarray]] = {method: [] for method in METHODS}
    targets: list[np.ndarray] = []
    popularity_shares: list[np.ndarray] = []
    for entry in built:
        entry.model.combination = combination
        users = [int(u) for u in entry.bucket.users]
        histories = build_histories(log, entry.model.catalogue, users, cuts=split.test_cuts)
        for method in METHODS:
            lists[method] += rank_items(entry.model, histories, method=method)
        targets += [entry.model.catalogue.rows_of(split.test_items[u]) for u in users]
        share = (entry.model.behaviour.popularity + 1) / (entry.users_train + 1)
        popularity_shares += [share] * len(users)
    catalogue_size = len(built[0].model.catalogue)
    return {
        method: measure_ranking(
            lists[method], targets, popularity_shares, catalogue_size=catalogue_size
        )
        for method in METHODS
    }


def _learn_combination(
    built: list[_BucketModel], log: InteractionLog, split: TemporalSplit, *, seed: int
) -> Combination:
    feature_blocks, label_blocks = [], []
    for entry in built:
        users = [int(u) for u in entry.bucket.users]
        catalogue = entry.model.catalogue
        histories = build_histories(log, catalogue, users, cuts=split.validation_cuts)
        targets = [catalogue.rows_of(split.validation_items[u]) for u in users]
        features, labels = collect_training_rows(entry.model, histories, targets)
        feature_blocks.append(features)
        label_blocks.append(labels)
    combination = fit_combination(
        np.concatenate(feature_blocks), np.concatenate(label_blocks), seed=seed
    )
    logger.info("combination learned weights=%s", np.round(combination.weights, 3).tolist())
    return combination


def rank_items(
    model: RecommenderModel, histories: list[UserHistory], *, method: str
) -> list[np.ndarray]:
    """Return each user's top `LIST_LENGTH` catalogue rows under one method."""
    if method == "hybrid":
        return [
            np.array([r.row for r in recs], dtype=np.int64)
            for recs in recommend_users(model, histories, top_n=LIST_LENGTH)
        ]
    popularity = model.behaviour.popularity.astype(np.float64)
    if method == "popularity":
        scores = [popularity.copy() for _ in histories]
    elif method == "item-knn":
        knn = compute_knn_scores(model.behaviour.similarity, histories).toarray()
        # Popularity only breaks ties among items with no similarity at all.
        tie_break = popularity / (popularity.max() + 1.0) * 1e-6
        scores = [row + tie_break for row in knn]
    elif method == "text-profile":
        from services.recommender.ranking import build_profiles

        profiles = build_profiles(model.vectors, histories, model.settings)
        scores = list((model.vectors @ profiles.T).T.astype(np.float64))
    else:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    ranked = []
    for history, row_scores in zip(histories, scores, strict=True):
        row_scores[history.rows] = -np.inf
        top = np.argpartition(-row_scores, LIST_LENGTH)[:LIST_LENGTH]
        ranked.append(top[np.argsort(-row_scores[top], kind="stable")])
    return ranked


def measure_ranking(
    lists: list[np.ndarray],
    targets: list[np.ndarray],
    popularity_shares: list[np.ndarray],
    *,
    catalogue_size: int,
) -> dict[str, float]:
    """Compute the metrics of the module docstring over users with at least one target."""
    recall_10, recall_20, ndcg, novelty = [], [], [], []
    covered: set[int] = set()
    discounts = 1.0 / np.log2(np.arange(2, 12))
    for ranked, target, share in zip(lists, targets, popularity_shares, strict=True):
        target = target[target >= 0]
        if not len(target):
            continue
        hits = np.isin(ranked, target)
        recall_10.append(hits[:10].sum() / len(target))
        recall_20.append(hits[:20].sum() / len(target))
        ideal = discounts[: min(len(target), 10)].sum()
        ndcg.append(float((hits[:10] * discounts[: len(hits[:10])]).sum() / ideal))
        covered.update(ranked[:10].tolist())
        if len(ranked):
            novelty.append(float(np.mean(-np.log2(np.minimum(share[ranked[:10]], 1.0)))))
    return {
        "recall_at_10": float(np.mean(recall_10)),
        "recall_at_20": float(np.mean(recall_20)),
        "ndcg_at_10": float(np.mean(ndcg)),
        "coverage": len(covered) / catalogue_size,
        "novelty": float(np.mean(novelty)),
    }
