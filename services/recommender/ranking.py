"""Candidates, features, the learned final ordering, diversity and reasons.

For each user: a profile (recency-weighted mean of liked item vectors, disliked
items subtracted) queries FAISS; item-kNN over the whole history and over the
latest items adds co-occurring items; the most popular and trending items
complete the set. Seen items never enter it. Each candidate gets the features in
`FEATURE_NAMES`, a logistic combination of them (weights learned on a
validation split, see `fit_combination`) scores it, and maximal marginal
relevance (Carbonell and Goldstein, SIGIR 1998) picks a varied top-N from the
best-scored candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from services.recommender.behaviour import Catalogue
from services.recommender.features import SECONDS_PER_DAY, BehaviourFeatures
from shared.retrieval import VectorIndex
from shared.settings import RecommenderSettings

__all__ = [
    "FEATURE_NAMES",
    "REASONS",
    "Combination",
    "Recommendation",
    "RecommenderModel",
    "UserHistory",
    "build_profiles",
    "collect_training_rows",
    "fit_combination",
    "impute_new_item_features",
    "recommend_users",
]

FEATURE_NAMES = (
    "profile",
    "ranker",
    "knn",
    "knn_recent",
    "popularity",
    "trend",
    "age",
)
REASONS = ("similar", "co_interacted", "popular", "trending", "query")

# Items behind the `knn_recent` feature, because in a temporal split the latest
# interactions predict the next one best.
RECENT_ITEMS = 10
# Candidates that MMR chooses from, as a multiple of the list length.
MMR_POOL_FACTOR = 4
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY
# Age assumed for items without a creation time.
UNKNOWN_AGE_YEARS = 10.0


@dataclass
class UserHistory:
    """One user's interactions as catalogue rows, oldest first, and an optional query vector."""

    rows: np.ndarray
    preferences: np.ndarray
    times: np.ndarray
    query: np.ndarray | None = None

    @classmethod
    def empty(cls, query: np.ndarray | None = None) -> UserHistory:
        """Return the history of a user with no interactions."""
        return cls(
            rows=np.empty(0, dtype=np.int64),
            preferences=np.empty(0, dtype=np.int8),
            times=np.empty(0, dtype=np.float64),
            query=query,
        )


@dataclass(frozen=True)
class Recommendation:
    """One recommended item (a catalogue row) with its score and the reason shown for it."""

    row: int
    score: float
    reason: str
    reason_row: int | None = None
    reason_tag: str | None = None


@dataclass
class Combination:
    """Logistic weights over standardised features; `score` returns a probability."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    is_learned: bool = False

    @classmethod
    def prior(cls) -> Combination:
        """Return equal weights on the similarity features, used before any fitting."""
        size = len(FEATURE_NAMES)
        weights = np.array([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.0])
        return cls(weights=weights, bias=0.0, mean=np.zeros(size), scale=np.ones(size))

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Return the linear scores of feature rows (n, len(FEATURE_NAMES))."""
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def to_dict(self) -> dict[str, object]:
        """Return the combination as JSON-ready lists."""
        return {
            "features": list(FEATURE_NAMES),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "is_learned": self.is_learned,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Combination:
        """Rebuild a combination written by `to_dict`."""
        if list(data["features"]) != list(FEATURE_NAMES):  # type: ignore[call-overload]
            raise ValueError(
                f"Stored combination has features {data['features']!r}, expected "
                f"{list(FEATURE_NAMES)!r}; run `diptych recommend fit` again."
            )
        return cls(
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),  # type: ignore[arg-type]
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            is_learned=bool(data["is_learned"]),
        )


@dataclass
class RecommenderModel:
    """Everything needed to recommend: items, their vectors, behaviour features, weights.

    Attributes:
        is_new: Per catalogue row, whether no interaction could have reached the
            item before the behaviour cut: it was added after the fit, or created
            at or after the cut. Its popularity, trend and item-kNN counts are then
            unknown rather than zero. An empty array (the default) is derived from
            the creation times.
    """

    catalogue: Catalogue
    vectors: np.ndarray
    ranker_vectors: np.ndarray
    index: VectorIndex
    behaviour: BehaviourFeatures
    combination: Combination
    settings: RecommenderSettings
    is_new: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    popular_rows: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if len(self.is_new) != len(self.catalogue):
            # NaN compares false, so an item without a creation time is not new.
            self.is_new = self.catalogue.created_at >= self.behaviour.cut
        self.is_new = np.asarray(self.is_new, dtype=bool)
        self.refresh_popular_rows()

    def refresh_popular_rows(self) -> None:
        """Recompute the most popular and trending rows after the features change."""
        count = self.settings.popular_candidates
        by_popularity = np.argsort(-self.behaviour.popularity, kind="stable")[:count]
        by_trend = np.argsort(-self.behaviour.trend, kind="stable")[:count]
        self.popular_rows = np.unique(np.r_[by_popularity, by_trend]).astype(np.int64)

    def add_item(self, addition: Catalogue, vector: np.ndarray, ranker_vector: np.ndarray) -> None:
        """Add one item, or give the row with its id the new text and vectors, and index it.

        A new row starts with zero behaviour counts and is marked `is_new`.

        Args:
            addition: A one-item catalogue.
            vector: The item's base-encoder vector, shape (1, d).
            ranker_vector: The item's ranker vector, shape (1, d_ranker).
        """
        row = int(self.catalogue.rows_of(addition.item_ids)[0])
        if row >= 0:
            self.catalogue.titles[row] = addition.titles[0]
            self.catalogue.texts[row] = addition.texts[0]
            self.catalogue.tags[row] = addition.tags[0]
            self.catalogue.created_at[row] = addition.created_at[0]
            self.vectors[row] = vector[0]
            self.ranker_vectors[row] = ranker_vector[0]
        else:
            self._append_row(addition, vector, ranker_vector)
        self.index.add(addition.item_ids, vector)

    def _append_row(
        self, addition: Catalogue, vector: np.ndarray, ranker_vector: np.ndarray
    ) -> None:
        old = self.catalogue
        self.catalogue = Catalogue(
            item_ids=np.r_[old.item_ids, addition.item_ids],
            titles=[*old.titles, *addition.titles],
            texts=[*old.texts, *addition.texts],
            tags=[*old.tags, *addition.tags],
            created_at=np.r_[old.created_at, addition.created_at],
        )
        self.vectors = np.vstack([self.vectors, vector])
        self.ranker_vectors = np.vstack([self.ranker_vectors, ranker_vector])
        self.is_new = np.r_[self.is_new, True]
        behaviour = self.behaviour
        size = len(self.catalogue)
        behaviour.popularity = np.r_[behaviour.popularity, np.float32(0)]
        behaviour.trend = np.r_[behaviour.trend, np.float32(0)]
        similarity = behaviour.similarity.tocsr()
        behaviour.similarity = sparse.csr_matrix(
            (similarity.data, similarity.indices, np.r_[similarity.indptr, similarity.indptr[-1]]),
            shape=(size, size),
        )


def build_profiles(
    vectors: np.ndarray, histories: list[UserHistory], settings: RecommenderSettings
) -> np.ndarray:
    """Return one unit-length profile per user (zero rows for users without history).

    Likes count +1 and dislikes -`dislike_weight`, each times 0.5 ** (age /
    half-life) where age runs back from the user's latest interaction. A user
    with only neutral interactions gets the recency-weighted mean of all of them.
    """
    profiles = np.zeros((len(histories), vectors.shape[1]), dtype=np.float32)
    half_life = settings.recency_half_life_days * SECONDS_PER_DAY
    for position, history in enumerate(histories):
        if not len(history.rows):
            continue
        recency = 0.5 ** ((history.times[-1] - history.times) / half_life)
        signs = np.where(
            history.preferences > 0,
            1.0,
            np.where(history.preferences < 0, -settings.dislike_weight, 0.0),
        )
        weights = recency * signs
        if not (weights > 0).any():
            weights = recency
        profile = weights.astype(np.float32) @ vectors[history.rows]  # (d,)
        norm = float(np.linalg.norm(profile))
        if norm > 0:
            profiles[position] = profile / norm
    return profiles


def _history_matrix(
    histories: list[UserHistory], n_items: int, *, recent: int | None = None
) -> sparse.csr_matrix:
    rows, cols = [], []
    for position, history in enumerate(histories):
        items = history.rows if recent is None else history.rows[-recent:]
        items = np.unique(items)
        rows.append(np.full(len(items), position))
        cols.append(items)
    row_array = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    col_array = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
    return sparse.csr_matrix(
        (np.ones(len(row_array), dtype=np.float32), (row_array, col_array)),
        shape=(len(histories), n_items),
    )


def compute_knn_scores(
    similarity: sparse.csr_matrix, histories: list[UserHistory], *, recent: int | None = None
) -> sparse.csr_matrix:
    """Return item-kNN scores (sum of similarities to the history), CSR (users, items)."""
    scores = (_history_matrix(histories, similarity.shape[0], recent=recent) @ similarity).tocsr()
    scores.sort_indices()
    return scores


def _row_values(matrix: sparse.csr_matrix, row: int, columns: np.ndarray) -> np.ndarray:
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    indices, data = matrix.indices[start:end], matrix.data[start:end]
    values = np.zeros(len(columns), dtype=np.float32)
    if not len(indices):
        return values
    positions = np.minimum(np.searchsorted(indices, columns), len(indices) - 1)
    found = indices[positions] == columns
    values[found] = data[positions[found]]
    return values


def _top_of_row(matrix: sparse.csr_matrix, row: int, count: int) -> np.ndarray:
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    indices, data = matrix.indices[start:end], matrix.data[start:end]
    if len(indices) > count:
        keep = np.argpartition(-data, count)[:count]
        indices = indices[keep]
    return indices.astype(np.int64)


@dataclass
class _ChunkContext:
    """Per-chunk arrays shared by the per-user steps."""

    profiles: np.ndarray
    ranker_profiles: np.ndarray
    knn: sparse.csr_matrix
    knn_recent: sparse.csr_matrix
    faiss_rows: np.ndarray
    mask: np.ndarray


def _prepare_chunk(model: RecommenderModel, histories: list[UserHistory]) -> _ChunkContext:
    settings = model.settings
    profiles = build_profiles(model.vectors, histories, settings)
    ranker_profiles = build_profiles(model.ranker_vectors, histories, settings)
    queries = profiles.copy()
    for position, history in enumerate(histories):
        if history.query is not None and not len(history.rows):
            queries[position] = history.query
    longest = max((len(h.rows) for h in histories), default=0)
    k = settings.faiss_candidates + min(longest, 4 * settings.faiss_candidates)
    k = min(k, max(len(model.index), 1))
    has_query = np.linalg.norm(queries, axis=1) > 0
    faiss_rows = np.full((len(histories), k), -1, dtype=np.int64)
    if has_query.any():
        _, ids = model.index.search(queries[has_query], k)
        faiss_rows[has_query] = np.where(
            ids >= 0, model.catalogue.rows_of(ids.ravel()).reshape(ids.shape), -1
        )
    return _ChunkContext(
        profiles=profiles,
        ranker_profiles=ranker_profiles,
        knn=compute_knn_scores(model.behaviour.similarity, histories),
        knn_recent=compute_knn_scores(model.behaviour.similarity, histories, recent=RECENT_ITEMS),
        faiss_rows=faiss_rows,
        mask=np.zeros(len(model.catalogue), dtype=bool),
    )


def _candidate_rows(
    model: RecommenderModel, history: UserHistory, context: _ChunkContext, position: int
) -> np.ndarray:
    settings = model.settings
    # A boolean mask over the catalogue, set and cleared per user, is much
    # faster than np.isin on every candidate list.
    seen = context.mask
    seen[history.rows] = True
    faiss_rows = context.faiss_rows[position]
    faiss_rows = faiss_rows[faiss_rows >= 0]
    faiss_rows = faiss_rows[~seen[faiss_rows]]
    parts = [faiss_rows[: settings.faiss_candidates], model.popular_rows]
    if settings.cooccurrence_candidates:
        parts.append(_top_of_row(context.knn, position, settings.cooccurrence_candidates))
        parts.append(_top_of_row(context.knn_recent, position, settings.cooccurrence_candidates))
    candidates = np.unique(np.concatenate(parts))
    candidates = candidates[~seen[candidates]]
    seen[history.rows] = False
    return candidates


def _features(
    model: RecommenderModel,
    candidates: np.ndarray,
    context: _ChunkContext,
    position: int,
    history: UserHistory,
) -> np.ndarray:
    behaviour = model.behaviour
    created = model.catalogue.created_at[candidates]
    age_years = np.where(
        np.isnan(created),
        UNKNOWN_AGE_YEARS,
        np.maximum(behaviour.cut - created, 0) / SECONDS_PER_YEAR,
    )
    profile = context.profiles[position]
    if history.query is not None and not len(history.rows):
        profile = history.query
    columns = [
        model.vectors[candidates] @ profile,
        model.ranker_vectors[candidates] @ context.ranker_profiles[position],
        np.log1p(_row_values(context.knn, position, candidates)),
        np.log1p(_row_values(context.knn_recent, position, candidates)),
        np.log1p(behaviour.popularity[candidates]),
        np.log1p(behaviour.trend[candidates]),
        np.log1p(age_years),
    ]
    return np.stack(columns, axis=1).astype(np.float64)  # (c, len(FEATURE_NAMES))


# Features counted from interactions, which are unknown for an `is_new` item.
_BEHAVIOUR_FEATURES = [
    FEATURE_NAMES.index(name) for name in ("knn", "knn_recent", "popularity", "trend")
]


def impute_new_item_features(
    model: RecommenderModel, candidates: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """Replace the behaviour features of `is_new` candidates by the combination's means.

    A new item's zero counts mean that nobody could interact with it yet, not
    that nobody wanted it. The learned weights read zeros as the latter and
    rank such an item below every item with a history (the MovieLens run in
    BENCHMARKS.md learned 0.78 per standard deviation of popularity). At the
    mean, each of these features adds nothing to the logit, so the item
    competes on its text and age.

    Returns:
        `features` (candidates, len(FEATURE_NAMES)) when no candidate is new,
        else a copy with the imputed values.
    """
    new = model.is_new[candidates]
    if not new.any():
        return features
    imputed = features.copy()
    for column in _BEHAVIOUR_FEATURES:
        imputed[new, column] = model.combination.mean[column]
    return imputed


def _cold_start_scores(
    model: RecommenderModel, candidates: np.ndarray, features: np.ndarray, history: UserHistory
) -> np.ndarray:
    popularity = features[:, FEATURE_NAMES.index("popularity")]
    trend = features[:, FEATURE_NAMES.index("trend")]
    top = max(float(popularity.max(initial=0.0)), 1e-9)
    popular = (popularity + 0.5 * trend) / (1.5 * top)
    if history.query is None:
        return popular
    # Cosines of different encoders cover different ranges, so the query
    # similarity is scaled to [0, 1] over the candidates before blending.
    similarity = features[:, FEATURE_NAMES.index("profile")]
    spread = float(similarity.max() - similarity.min())
    scaled = (similarity - similarity.min()) / spread if spread > 0 else np.ones_like(similarity)
    weight = model.settings.cold_start_query_weight
    return weight * scaled + (1 - weight) * popular


def select_diverse(
    vectors: np.ndarray, scores: np.ndarray, *, count: int, relevance_weight: float
) -> np.ndarray:
    """Pick `count` positions by maximal marginal relevance over min-max scaled scores."""
    count = min(count, len(scores))
    spread = float(scores.max() - scores.min()) if len(scores) else 0.0
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
    similarity = vectors @ vectors.T  # (c, c)
    chosen: list[int] = []
    closest = np.full(len(scores), -np.inf)
    available = np.ones(len(scores), dtype=bool)
    for _ in range(count):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = relevance_weight * relevance - (1 - relevance_weight) * penalty
        value[~available] = -np.inf
        pick = int(np.argmax(value))
        chosen.append(pick)
        available[pick] = False
        closest = np.maximum(closest, similarity[pick])
    return np.array(chosen, dtype=np.int64)


def _explain(
    model: RecommenderModel,
    history: UserHistory,
    picked: np.ndarray,
    features: np.ndarray,
    anchor_mask: np.ndarray,
) -> list[tuple[str, int | None, str | None]]:
    if not len(history.rows):
        reason = "query" if history.query is not None else "popular"
        return [(reason, None, _first_tag(model, row)) for row in picked]
    combination = model.combination
    contributions = (features - combination.mean) / combination.scale * combination.weights
    recent = history.rows[-50:]
    liked = recent[history.preferences[-50:] >= 0]
    anchors = liked if len(liked) else recent
    similarity = model.vectors[anchors] @ model.vectors[picked].T  # (h, p)
    anchor_mask[anchors] = True
    reasons: list[tuple[str, int | None, str | None]] = []
    for column, row in enumerate(picked):
        share = contributions[column]
        groups = {
            "similar": share[0] + share[1],
            "co_interacted": share[2] + share[3],
            "popular": share[4],
            "trending": share[5],
        }
        reason = max(groups, key=lambda name: groups[name])
        anchor = None
        if reason == "co_interacted":
            anchor = _cooccurring_anchor(model.behaviour.similarity, int(row), anchor_mask)
        if anchor is not None:
            reasons.append((reason, anchor, None))
        elif reason in ("similar", "co_interacted"):
            anchor = int(anchors[int(np.argmax(similarity[:, column]))])
            reasons.append(("similar", anchor, None))
        else:
            reasons.append((reason, None, _first_tag(model, row)))
    anchor_mask[anchors] = False
    return reasons


def _cooccurring_anchor(
    similarity: sparse.csr_matrix, row: int, anchor_mask: np.ndarray
) -> int | None:
    # Reads the candidate's own neighbour list straight from the CSR arrays;
    # scipy's fancy indexing costs about a millisecond per call.
    start, end = similarity.indptr[row], similarity.indptr[row + 1]
    neighbours = similarity.indices[start:end]
    found = anchor_mask[neighbours]
    if not found.any():
        return None
    values = similarity.data[start:end]
    return int(neighbours[found][int(np.argmax(values[found]))])


def _first_tag(model: RecommenderModel, row: int) -> str | None:
    tags = model.catalogue.tags[row]
    return tags[0] if tags else None


def recommend_users(
    model: RecommenderModel, histories: list[UserHistory], *, top_n: int, diversify: bool = True
) -> list[list[Recommendation]]:
    """Return up to `top_n` recommendations per user, unseen, distinct, best first.

    Users without history get popularity, blended with their query vector when
    `UserHistory.query` is set. `diversify=False` skips the MMR step.
    """
    if not histories:
        return []
    context = _prepare_chunk(model, histories)
    results: list[list[Recommendation]] = []
    for position, history in enumerate(histories):
        candidates = _candidate_rows(model, history, context, position)
        if not len(candidates):
            results.append([])
            continue
        features = _features(model, candidates, context, position, history)
        if len(history.rows):
            features = impute_new_item_features(model, candidates, features)
            scores = 1.0 / (1.0 + np.exp(-model.combination.logits(features)))
        else:
            # Cold-start lists rank by observed popularity, where a new item's zero is true.
            scores = _cold_start_scores(model, candidates, features, history)
        pool = np.argsort(-scores, kind="stable")[: max(MMR_POOL_FACTOR * top_n, 40)]
        if diversify:
            order = pool[
                select_diverse(
                    model.vectors[candidates[pool]],
                    scores[pool],
                    count=top_n,
                    relevance_weight=model.settings.mmr_lambda,
                )
            ]
        else:
            order = pool[:top_n]
        picked = candidates[order]
        reasons = _explain(model, history, picked, features[order], context.mask)
        results.append(
            [
                Recommendation(int(row), float(scores[i]), reason, anchor, tag)
                for row, i, (reason, anchor, tag) in zip(picked, order, reasons, strict=True)
            ]
        )
    return results


def collect_training_rows(
    model: RecommenderModel, histories: list[UserHistory], targets: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Return candidate features and 0/1 labels (candidate in the user's targets)."""
    context = _prepare_chunk(model, histories)
    feature_blocks, label_blocks = [], []
    for position, (history, target) in enumerate(zip(histories, targets, strict=True)):
        if not len(history.rows):
            continue
        candidates = _candidate_rows(model, history, context, position)
        if not len(candidates):
            continue
        feature_blocks.append(_features(model, candidates, context, position, history))
        label_blocks.append(np.isin(candidates, target).astype(np.int8))
    if not feature_blocks:
        return np.empty((0, len(FEATURE_NAMES))), np.empty(0, dtype=np.int8)
    return np.concatenate(feature_blocks), np.concatenate(label_blocks)


def fit_combination(features: np.ndarray, labels: np.ndarray, *, seed: int) -> Combination:
    """Learn the final ordering's weights by logistic regression on validation candidates.

    Raises:
        ValueError: If the labels do not contain both classes.
    """
    if len(np.unique(labels)) < 2:
        raise ValueError(
            "The validation candidates must contain hits and misses to learn weights, got "
            f"{int(labels.sum())} hits in {len(labels)} candidates; add interactions or "
            "lower `validation_size`."
        )
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    regression = LogisticRegression(max_iter=2000, random_state=seed)
    regression.fit((features - mean) / scale, labels)
    return Combination(
        weights=regression.coef_[0].astype(np.float64),
        bias=float(regression.intercept_[0]),
        mean=mean,
        scale=scale,
        is_learned=True,
    )
