"""Assemble a `RecommenderModel` from a catalogue and the interactions before a cut."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from services.recommender.behaviour import Catalogue, InteractionLog
from services.recommender.embeddings import build_item_index, embed_texts
from services.recommender.features import build_behaviour_features
from services.recommender.ranking import Combination, RecommenderModel, UserHistory
from shared.retrieval import TextEmbedder
from shared.settings import RecommenderSettings, get_settings

__all__ = ["build_histories", "build_model", "resolve_cache_dir"]

logger = logging.getLogger(__name__)


def resolve_cache_dir(settings: RecommenderSettings) -> Path:
    """Return the embedding cache folder: the setting, or ``<home>/recommender/embedding-cache``."""
    return settings.embedding_cache_dir or get_settings().recommender_dir / "embedding-cache"


def build_model(
    catalogue: Catalogue,
    log: InteractionLog,
    *,
    cut: float,
    embedder: TextEmbedder,
    settings: RecommenderSettings,
    ranker: TextEmbedder | None = None,
    combination: Combination | None = None,
    vectors: np.ndarray | None = None,
    ranker_vectors: np.ndarray | None = None,
) -> RecommenderModel:
    """Embed the catalogue, index it and count behaviour features from `log` before `cut`.

    Args:
        catalogue: Items with their texts as of `cut`.
        log: Interactions; only those strictly before `cut` are used.
        cut: Unix seconds.
        embedder: The base encoder for item vectors and the FAISS index.
        settings: Recommender settings.
        ranker: The fine-tuned ranker encoder; ``None`` uses `embedder`'s vectors.
        combination: Final-ordering weights; ``None`` uses `Combination.prior`.
        vectors: `embedder`'s vectors of `catalogue.texts`, when already computed.
        ranker_vectors: `ranker`'s vectors of `catalogue.texts`, when already computed.
    """
    if vectors is None:
        vectors = embed_texts(embedder, catalogue.texts, cache_dir=resolve_cache_dir(settings))
    if ranker_vectors is None:
        ranker_vectors = vectors if ranker is None else embed_texts(ranker, catalogue.texts)
    index = build_item_index(
        catalogue.item_ids, vectors, embedding_model=embedder.name, settings=settings
    )
    behaviour = build_behaviour_features(
        log.before(cut),
        catalogue,
        cut=cut,
        neighbours_per_item=settings.neighbours_per_item,
        trend_window_days=settings.trend_window_days,
    )
    return RecommenderModel(
        catalogue=catalogue,
        vectors=vectors,
        ranker_vectors=ranker_vectors,
        index=index,
        behaviour=behaviour,
        combination=combination or Combination.prior(),
        settings=settings,
    )


def build_histories(
    log: InteractionLog,
    catalogue: Catalogue,
    user_ids: Sequence[int],
    *,
    cuts: dict[int, float] | None = None,
) -> list[UserHistory]:
    """Return each user's history as catalogue rows, oldest first.

    Args:
        log: Interactions; items missing from `catalogue` are dropped.
        catalogue: The catalogue whose rows the histories refer to.
        user_ids: Users in the order wanted; unknown users get empty histories.
        cuts: Per-user cut times; a user's history then holds only interactions
            strictly before their cut.
    """
    groups = log.group_by_user()
    rows = catalogue.rows_of(log.items)
    histories = []
    for user_id in user_ids:
        positions = groups.get(int(user_id), np.empty(0, dtype=np.int64))
        if cuts is not None and int(user_id) in cuts:
            positions = positions[log.times[positions] < cuts[int(user_id)]]
        positions = positions[rows[positions] >= 0]
        histories.append(
            UserHistory(
                rows=rows[positions],
                preferences=log.preferences[positions],
                times=log.times[positions],
            )
        )
    return histories
