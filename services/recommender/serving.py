"""The fitted recommender on disk: fit from the database, load once per process, extend.

``<home>/recommender/model/`` contains ``index/`` (the FAISS item index and its
manifest), ``arrays.npz`` (item vectors, ranker vectors, behaviour counts and
the item-kNN matrix) and ``model.json`` (titles, tags, weights, model names).
A process reloads the folder when ``model.json`` changes, so an item added
through the API reaches the batch workers without a rebuild.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
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
from shared.errors import ModelVersionNotFoundError, RetrievalError
from shared.retrieval import TextEmbedder, load_text_embedder
from shared.settings import RecommenderSettings, get_settings

__all__ = [
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
    )


def _production_ranker(settings: RecommenderSettings) -> tuple[str, Path] | None:
    from shared.registry import find_version, verify_version

    try:
        row = find_version(settings.ranker_model)
    except ModelVersionNotFoundError:
        return None
    return row.reference, verify_version(row)


def fit_from_database(*, show_progress: bool = False) -> FitSummary:
    """Fit the recommender on every stored item and interaction and save it.

    The final ordering's weights are learned on each user's last
    `validation_size` interactions, with features from before their cuts (as
    in the evaluation); the saved model then uses every interaction.

    Raises:
        ModelNotFittedError: If there are no items.
        ValueError: If there are too few interactions to learn the weights.
    """
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
    combination = _learn_weights(
        catalogue, log, embedder=embedder, ranker=ranker, settings=settings
    )
    cut = float(log.times.max()) + 1.0 if len(log) else dt.datetime.now(dt.UTC).timestamp()
    model = build_model(
        catalogue,
        log,
        cut=cut,
        embedder=embedder,
        settings=settings,
        ranker=ranker,
        combination=combination,
        show_progress=show_progress,
    )
    folder = save_model(model, model_folder(), ranker=production[0] if production else None)
    clear_model_cache()
    return FitSummary(
        items=len(catalogue),
        users=len(log.user_ids()),
        interactions=len(log),
        index_kind=model.index.kind,
        ranker=production[0] if production else None,
        combination=combination,
        folder=folder,
    )


def _learn_weights(
    catalogue: Catalogue,
    log: Any,
    *,
    embedder: TextEmbedder,
    ranker: TextEmbedder | None,
    settings: RecommenderSettings,
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
    for bucket in split.buckets:
        model = build_model(
            catalogue, log, cut=bucket.cut, embedder=embedder, settings=settings, ranker=ranker
        )
        users = [int(u) for u in bucket.users]
        histories = build_histories(log, catalogue, users, cuts=split.test_cuts)
        targets = [catalogue.rows_of(split.test_items[u]) for u in users]
        bucket_features, bucket_labels = collect_training_rows(model, histories, targets)
        features.append(bucket_features)
        labels.append(bucket_labels)
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
    user_ids: list[int], *, top_n: int, query: str | None = None
) -> list[list[Recommendation]]:
    """Recommend for stored users; users without history get popularity (and `query`)."""
    model = get_serving_model()
    settings = model.settings
    log = store.load_user_interactions(
        user_ids,
        like_threshold=settings.like_threshold,
        dislike_threshold=settings.dislike_threshold,
    )
    histories = build_histories(log, model.catalogue, user_ids)
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


def add_item(record: ItemRecord) -> RecommenderModel:
    """Store an item, embed it and add it to the fitted model and its index, then save.

    The item is recommendable at once: FAISS finds it for profiles and queries
    near its text; its behaviour counts start at zero.

    Raises:
        ModelNotFittedError: If nothing was fitted yet.
    """
    model = get_serving_model()
    store.import_items([record])
    merged = store.get_item_records([record.item_id])[0]
    catalogue_row = build_catalogue([merged])
    embedder = load_text_embedder(None)
    vector = embed_texts(embedder, catalogue_row.texts, cache_dir=resolve_cache_dir(model.settings))
    ranker_name = _serving_ranker_name()
    ranker_vector = vector
    if ranker_name is not None:
        from shared.registry import find_version, verify_version

        ranker = load_text_embedder(verify_version(find_version(ranker_name)))
        ranker_vector = ranker.encode(catalogue_row.texts)
    _extend_model(model, catalogue_row, vector, ranker_vector)
    save_model(model, model_folder(), ranker=ranker_name)
    logger.info("item added item_id=%d count=%d", record.item_id, len(model.catalogue))
    return model


def _extend_model(
    model: RecommenderModel, addition: Catalogue, vector: np.ndarray, ranker_vector: np.ndarray
) -> None:
    row = int(model.catalogue.rows_of(addition.item_ids)[0])
    if row >= 0:
        model.catalogue.titles[row] = addition.titles[0]
        model.catalogue.texts[row] = addition.texts[0]
        model.catalogue.tags[row] = addition.tags[0]
        model.vectors[row] = vector[0]
        model.ranker_vectors[row] = ranker_vector[0]
    else:
        old = model.catalogue
        model.catalogue = Catalogue(
            item_ids=np.r_[old.item_ids, addition.item_ids],
            titles=[*old.titles, *addition.titles],
            texts=[*old.texts, *addition.texts],
            tags=[*old.tags, *addition.tags],
            created_at=np.r_[old.created_at, addition.created_at],
        )
        model.vectors = np.vstack([model.vectors, vector])
        model.ranker_vectors = np.vstack([model.ranker_vectors, ranker_vector])
        behaviour = model.behaviour
        size = len(model.catalogue)
        behaviour.popularity = np.r_[behaviour.popularity, np.float32(0)]
        behaviour.trend = np.r_[behaviour.trend, np.float32(0)]
        similarity = behaviour.similarity.tocsr()
        behaviour.similarity = sparse.csr_matrix(
            (similarity.data, similarity.indices, np.r_[similarity.indptr, similarity.indptr[-1]]),
            shape=(size, size),
        )
    model.index.add(addition.item_ids, vector)
