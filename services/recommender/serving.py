"""The fitted recommender on disk: fit from the database, load once per process, extend.

``<home>/recommender/model/`` contains ``index/`` (the FAISS item index and its
manifest), ``arrays.npz`` (item vectors, ranker vectors, behaviour counts and
the item-kNN matrix) and ``model.json`` (titles, tags, weights, model names).
A process reloads the folder when ``model.json`` changes, so an item added
through the API reaches the batch workers without a rebuild.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from services.recommender import store
from services.recommender.behaviour import Catalogue
from services.recommender.catalogue import ItemRecord, build_catalogue
from services.recommender.embeddings import REBUILD_COMMAND, embed_texts, load_item_index
from services.recommender.evaluation import split_temporal
from services.recommender.features import BehaviourFeatures
from services.recommender.fitting import build_histories, build_model, resolve_cache_dir
from services.recommender.ranking import (
    Combination,
    Recommendation,
    RecommenderModel,
    UserHistory,
    collect_training_rows,
    fit_combination,
    recommend_users,
)
from services.recommender.store import ItemChange
from shared.errors import ModelVersionNotFoundError, RetrievalError
from shared.retrieval import TextEmbedder, load_text_embedder
from shared.settings import RecommenderSettings, get_settings

__all__ = [
    "FIT_STAGES",
    "FitProgress",
    "FitSummary",
    "ModelNotFittedError",
    "add_item",
    "clear_model_cache",
    "fit_from_database",
    "get_serving_model",
    "load_model",
    "model_folder",
    "recommend_for_users",
    "save_model",
    "similar_items",
]

logger = logging.getLogger(__name__)

_META = "model.json"
_ARRAYS = "arrays.npz"
_INDEX = "index"


FitProgress = Callable[[str, int, int], None]
# Stages that `fit_from_database` reports, in order, with a label for each.
FIT_STAGES = {
    "embed": "Embedding items",
    "embed_ranker": "Embedding items with the ranker",
    "weights": "Learning weights (time buckets)",
    "model": "Building and saving the model",
}


class ModelNotFittedError(RetrievalError, LookupError):
    """No fitted recommender exists yet under the home folder."""


@dataclass(frozen=True)
class FitSummary:
    """Summary of a `fit_from_database` call: sizes, index kind, ranker and weights."""

    items: int
    users: int
    interactions: int
    index_kind: str
    ranker: str | None
    combination: Combination
    folder: Path


def model_folder() -> Path:
    """Return the folder of the fitted model."""
    return get_settings().recommender_dir / "model"


def save_model(model: RecommenderModel, folder: Path, *, ranker: str | None) -> Path:
    """Write the model into `folder`; ``model.json`` is replaced last, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    model.index.save(folder / _INDEX)
    similarity = model.behaviour.similarity.tocsr()
    temporary = folder / f".{_ARRAYS}.{os.getpid()}.npz"
    np.savez(
        temporary,
        item_ids=model.catalogue.item_ids,
        created_at=model.catalogue.created_at,
        vectors=model.vectors,
        ranker_vectors=model.ranker_vectors,
        popularity=model.behaviour.popularity,
        trend=model.behaviour.trend,
        similarity_data=similarity.data,
        similarity_indices=similarity.indices,
        similarity_indptr=similarity.indptr,
        is_new=model.is_new,
    )
    os.replace(temporary, folder / _ARRAYS)
    meta = {
        "embedding_model": model.index.embedding_model,
        "ranker": ranker,
        "cut": model.behaviour.cut,
        "titles": model.catalogue.titles,
        "texts": model.catalogue.texts,
        "tags": model.catalogue.tags,
        "combination": model.combination.to_dict(),
        "saved_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    meta_temporary = folder / f".{_META}.{os.getpid()}"
    meta_temporary.write_text(json.dumps(meta, ensure_ascii=False))
    os.replace(meta_temporary, folder / _META)
    return folder


def load_model(
    folder: Path, *, embedder: TextEmbedder, settings: RecommenderSettings
) -> RecommenderModel:
    """Load a model saved by `save_model`, checking the index was built by `embedder`.

    Raises:
        ModelNotFittedError: If the folder contains no model.
        IndexMismatchError: If the index was built with another embedding model.
    """
    if not (folder / _META).is_file():
        raise ModelNotFittedError(
            f"No fitted recommender in {str(folder)!r}; run `{REBUILD_COMMAND}` first."
        )
    meta = json.loads((folder / _META).read_text())
    index = load_item_index(folder / _INDEX, embedder=embedder)
    with np.load(folder / _ARRAYS) as arrays:
        stored = {name: arrays[name] for name in arrays.files}
    size = len(stored["item_ids"])
    catalogue = Catalogue(
        item_ids=stored["item_ids"],
        titles=list(meta["titles"]),
        texts=list(meta["texts"]),
        tags=[list(tags) for tags in meta["tags"]],
        created_at=stored["created_at"],
    )
    similarity = sparse.csr_matrix(
        (stored["similarity_data"], stored["similarity_indices"], stored["similarity_indptr"]),
        shape=(size, size),
    )
    return RecommenderModel(
        catalogue=catalogue,
        vectors=stored["vectors"],
        ranker_vectors=stored["ranker_vectors"],
        index=index,
        behaviour=BehaviourFeatures(
            popularity=stored["popularity"],
            trend=stored["trend"],
            similarity=similarity,
            cut=float(meta["cut"]),
        ),
        combination=Combination.from_dict(meta["combination"]),
        settings=settings,
        # Folders saved before `is_new` was stored derive it from creation times.
        is_new=stored.get("is_new", np.empty(0, dtype=bool)),
    )


def _production_ranker(settings: RecommenderSettings) -> tuple[str, Path] | None:
    from shared.registry import find_version, verify_version

    try:
        row = find_version(settings.ranker_model)
    except ModelVersionNotFoundError:
        return None
    return row.reference, verify_version(row)


def fit_from_database(*, progress: FitProgress | None = None) -> FitSummary:
    """Fit the recommender on every stored item and interaction and save it.

    The final ordering's weights are learned on each user's last
    `validation_size` interactions, with features from before their cuts (as
    in the evaluation); the saved model then uses every interaction.

    Args:
        progress: Called as (stage, done, total) for the stages of `FIT_STAGES`,
            in that order; ``embed_ranker`` only when a ranker is in production.

    Raises:
        ModelNotFittedError: If there are no items.
        ValueError: If there are too few interactions to learn the weights.
    """
    report = progress or _ignore_progress
    settings = get_settings().recommender
    catalogue = store.load_catalogue()
    if not len(catalogue):
        raise ModelNotFittedError("The catalogue is empty; import items first.")
    log = store.load_interaction_log(
        like_threshold=settings.like_threshold, dislike_threshold=settings.dislike_threshold
    )
    embedder = load_text_embedder(None)
    production = _production_ranker(settings)
    ranker = None
    if production is not None:
        ranker = TextEmbedder.from_folder(production[1], model_name=production[0])
    vectors, ranker_vectors = _embed_catalogue(
        catalogue, embedder=embedder, ranker=ranker, settings=settings, report=report
    )
    combination = _learn_weights(
        catalogue,
        log,
        embedder=embedder,
        settings=settings,
        vectors=(vectors, ranker_vectors),
        report=functools.partial(report, "weights"),
    )
    cut = float(log.times.max()) + 1.0 if len(log) else dt.datetime.now(dt.UTC).timestamp()
    report("model", 0, 2)
    model = build_model(
        catalogue,
        log,
        cut=cut,
        embedder=embedder,
        settings=settings,
        combination=combination,
        vectors=vectors,
        ranker_vectors=ranker_vectors,
    )
    report("model", 1, 2)
    folder = save_model(model, model_folder(), ranker=production[0] if production else None)
    clear_model_cache()
    report("model", 2, 2)
    return FitSummary(
        items=len(catalogue),
        users=len(log.user_ids()),
        interactions=len(log),
        index_kind=model.index.kind,
        ranker=production[0] if production else None,
        combination=combination,
        folder=folder,
    )


def _ignore_progress(stage: str, done: int, total: int) -> None:
    return None


def _embed_catalogue(
    catalogue: Catalogue,
    *,
    embedder: TextEmbedder,
    ranker: TextEmbedder | None,
    settings: RecommenderSettings,
    report: FitProgress,
) -> tuple[np.ndarray, np.ndarray]:
    vectors = embed_texts(
        embedder,
        catalogue.texts,
        cache_dir=resolve_cache_dir(settings),
        progress=functools.partial(report, "embed"),
    )
    if ranker is None:
        return vectors, vectors
    ranker_vectors = embed_texts(
        ranker, catalogue.texts, progress=functools.partial(report, "embed_ranker")
    )
    return vectors, ranker_vectors


def _learn_weights(
    catalogue: Catalogue,
    log: Any,
    *,
    embedder: TextEmbedder,
    settings: RecommenderSettings,
    vectors: tuple[np.ndarray, np.ndarray],
    report: Callable[[int, int], None],
) -> Combination:
    try:
        split = split_temporal(
            log,
            test_size=settings.validation_size,
            validation_size=1,
            buckets=settings.time_buckets,
        )
    except ValueError:
        logger.warning("too few interactions to learn weights; using the prior weights")
        return Combination.prior()
    features, labels = [], []
    report(0, len(split.buckets))
    for number, bucket in enumerate(split.buckets, start=1):
        model = build_model(
            catalogue,
            log,
            cut=bucket.cut,
            embedder=embedder,
            settings=settings,
            vectors=vectors[0],
            ranker_vectors=vectors[1],
        )
        users = [int(u) for u in bucket.users]
        histories = build_histories(log, catalogue, users, cuts=split.test_cuts)
        targets = [catalogue.rows_of(split.test_items[u]) for u in users]
        bucket_features, bucket_labels = collect_training_rows(model, histories, targets)
        features.append(bucket_features)
        labels.append(bucket_labels)
        report(number, len(split.buckets))
    try:
        return fit_combination(
            np.concatenate(features), np.concatenate(labels), seed=get_settings().seed
        )
    except ValueError as exc:
        logger.warning("weights not learned (%s); using the prior weights", exc)
        return Combination.prior()


_cache_lock = threading.Lock()
_cache: dict[str, tuple[int, float, RecommenderModel, str | None]] = {}


def get_serving_model() -> RecommenderModel:
    """Return this process's model, reloading it when the saved folder changed.

    Raises:
        ModelNotFittedError: If nothing was fitted yet.
        IndexMismatchError: If the index was built with another embedding model.
    """
    folder = model_folder()
    meta_path = folder / _META
    if not meta_path.is_file():
        raise ModelNotFittedError(
            f"No fitted recommender in {str(folder)!r}; run `{REBUILD_COMMAND}` first."
        )
    stamp = meta_path.stat().st_mtime_ns
    key = str(folder)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == os.getpid() and cached[1] == stamp:
            return cached[2]
        settings = get_settings().recommender
        model = load_model(folder, embedder=load_text_embedder(None), settings=settings)
        ranker = json.loads(meta_path.read_text()).get("ranker")
        _cache[key] = (os.getpid(), stamp, model, ranker)
        return model


def _serving_ranker_name() -> str | None:
    cached = _cache.get(str(model_folder()))
    return cached[3] if cached else None


def clear_model_cache() -> None:
    """Forget the loaded models, so the next call reads the folder again."""
    with _cache_lock:
        _cache.clear()


def recommend_for_users(
    user_ids: Sequence[int | None], *, top_n: int, query: str | None = None
) -> list[list[Recommendation]]:
    """Recommend for stored users; users without history get popularity (and `query`).

    A None in `user_ids` stands for a user unknown to the store, with no history.
    """
    model = get_serving_model()
    settings = model.settings
    keys = [user for user in user_ids if user is not None]
    log = store.load_user_interactions(
        keys,
        like_threshold=settings.like_threshold,
        dislike_threshold=settings.dislike_threshold,
    )
    by_key = dict(zip(keys, build_histories(log, model.catalogue, keys), strict=True))
    histories = [UserHistory.empty() if user is None else by_key[user] for user in user_ids]
    if query:
        vector = load_text_embedder(None).encode([query])[0]
        histories = [h if len(h.rows) else UserHistory.empty(query=vector) for h in histories]
    return recommend_users(model, histories, top_n=top_n)


def similar_items(item_id: int, *, count: int) -> list[tuple[int, float]]:
    """Return the `count` items whose vectors are closest to `item_id`'s.

    Raises:
        LookupError: If the item is not in the fitted model.
    """
    model = get_serving_model()
    row = int(model.catalogue.rows_of(np.array([item_id]))[0])
    if row < 0:
        raise LookupError(f"Item {item_id} is not in the fitted recommender.")
    scores, ids = model.index.search(model.vectors[row : row + 1], count + 1)
    return [
        (int(i), float(s))
        for i, s in zip(ids[0], scores[0], strict=True)
        if i >= 0 and i != item_id
    ][:count]


def add_item(
    record: ItemRecord, *, default_created_at: float = math.nan
) -> tuple[ItemRecord, ItemChange]:
    """Store an item (or update the stored item with its id) and bring it into the fitted model.

    The item is recommendable at once: FAISS finds it for profiles and queries
    near its text. An item whose text changed is embedded again; one whose
    text is unchanged keeps its vector.

    Args:
        record: The item, named by key, external id or both.
        default_created_at: Creation time (Unix seconds) for a new item without one.

    Returns:
        The stored item and whether it was created, updated or unchanged.

    Raises:
        ModelNotFittedError: If nothing was fitted yet.
        IdConflictError: If the record's key and external id name different items.
    """
    model = get_serving_model()
    stored, change = store.upsert_item(record, default_created_at=default_created_at)
    addition = build_catalogue([stored])
    row = int(model.catalogue.rows_of(addition.item_ids)[0])
    if row >= 0 and model.catalogue.texts[row] == addition.texts[0]:
        _refresh_creation_time(model, row, float(addition.created_at[0]))
        return stored, change
    embedder = load_text_embedder(None)
    vector = embed_texts(embedder, addition.texts, cache_dir=resolve_cache_dir(model.settings))
    ranker_name = _serving_ranker_name()
    ranker_vector = vector
    if ranker_name is not None:
        from shared.registry import find_version, verify_version

        ranker = load_text_embedder(verify_version(find_version(ranker_name)))
        ranker_vector = ranker.encode(addition.texts)
    model.add_item(addition, vector, ranker_vector)
    save_model(model, model_folder(), ranker=ranker_name)
    logger.info(
        "item embedded item_id=%d change=%s count=%d", stored.item_id, change, len(model.catalogue)
    )
    return stored, change


def _refresh_creation_time(model: RecommenderModel, row: int, created_at: float) -> None:
    known = float(model.catalogue.created_at[row])
    if known == created_at or (math.isnan(known) and math.isnan(created_at)):
        return
    model.catalogue.created_at[row] = created_at
    save_model(model, model_folder(), ranker=_serving_ranker_name())
