"""REST routes of the recommender; the console mounts this router under ``/api/v1``."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from services.recommender import store
from services.recommender.catalogue import ItemRecord, TagRecord
from services.recommender.reasons import describe_reason
from services.recommender.schemas import (
    ItemCreate,
    ItemPublic,
    RecommendationList,
    RecommendationPublic,
    SimilarItemPublic,
)
from services.recommender.serving import (
    ModelNotFittedError,
    add_item,
    get_serving_model,
    recommend_for_users,
    similar_items,
)
from shared.errors import IndexMismatchError, RetrievalError

__all__ = ["build_recommendation_list", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["recommender"])

_MAX_QUERY = 1000


def _not_fitted(exc: RetrievalError) -> HTTPException:
    # Not fitted yet, or fitted with another encoder: the fix is `diptych recommend fit`.
    return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))


@router.get("/recommendations/{user_id}", response_model=RecommendationList)
def get_recommendations(
    user_id: int,
    top_n: Annotated[int, Query(ge=1, le=200)] = 10,
    run_id: Annotated[str | None, Query(max_length=100)] = None,
    query: Annotated[str | None, Query(max_length=_MAX_QUERY)] = None,
    fresh: bool = False,
) -> RecommendationList:
    """Return a user's list from the latest batch run, or computed now."""
    try:
        return build_recommendation_list(
            user_id, top_n=top_n, run_id=run_id, query=query, fresh=fresh
        )
    except (ModelNotFittedError, IndexMismatchError) as exc:
        raise _not_fitted(exc) from None
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


def build_recommendation_list(
    user_id: int, *, top_n: int, run_id: str | None, query: str | None, fresh: bool
) -> RecommendationList:
    """Read the stored list of `user_id`, or compute one when there is none or `fresh` is set.

    Raises:
        LookupError: If `run_id` names no run.
        ModelNotFittedError: If a list must be computed and nothing was fitted yet.
    """
    model = get_serving_model()
    titles = dict(zip(model.catalogue.item_ids.tolist(), model.catalogue.titles, strict=True))
    chosen_run = run_id or store.latest_run_id()
    if run_id is not None and run_id != store.latest_run_id() and not store.run_exists(run_id):
        raise LookupError(f"Run {run_id!r} not found; omit `run_id` for the latest run.")
    stored = [] if fresh or chosen_run is None else store.read_recommendations(chosen_run, user_id)
    if stored:
        items = [
            RecommendationPublic(
                rank=row.rank,
                item_id=row.item_id,
                title=titles.get(row.item_id, ""),
                score=row.score,
                reason=row.reason,
                reason_text=describe_reason(
                    row.reason,
                    anchor_title=titles.get(row.reason_item_id or -1),
                    tag=row.reason_tag,
                ),
                reason_item_id=row.reason_item_id,
                reason_tag=row.reason_tag,
            )
            for row in stored[:top_n]
        ]
        return RecommendationList(user_id=user_id, run_id=chosen_run, items=items)
    computed = recommend_for_users([user_id], top_n=top_n, query=query)[0]
    ids = model.catalogue.item_ids
    items = []
    for rank, rec in enumerate(computed, start=1):
        anchor = None if rec.reason_row is None else int(ids[rec.reason_row])
        items.append(
            RecommendationPublic(
                rank=rank,
                item_id=int(ids[rec.row]),
                title=model.catalogue.titles[rec.row],
                score=rec.score,
                reason=rec.reason,
                reason_text=describe_reason(
                    rec.reason,
                    anchor_title=None if anchor is None else titles.get(anchor),
                    tag=rec.reason_tag,
                ),
                reason_item_id=anchor,
                reason_tag=rec.reason_tag,
            )
        )
    return RecommendationList(user_id=user_id, run_id=None, items=items)


@router.get("/items/{item_id}/similar", response_model=list[SimilarItemPublic])
def get_similar_items(
    item_id: int, count: Annotated[int, Query(ge=1, le=200)] = 10
) -> list[SimilarItemPublic]:
    """Return the items closest to an item in the embedding space."""
    try:
        model = get_serving_model()
        found = similar_items(item_id, count=count)
    except (ModelNotFittedError, IndexMismatchError) as exc:
        raise _not_fitted(exc) from None
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    titles = dict(zip(model.catalogue.item_ids.tolist(), model.catalogue.titles, strict=True))
    return [
        SimilarItemPublic(item_id=i, title=titles.get(i, ""), score=score) for i, score in found
    ]


@router.post("/items", status_code=status.HTTP_201_CREATED, response_model=ItemPublic)
def create_item(request: ItemCreate) -> ItemPublic:
    """Add an item to the catalogue and the index; it is recommendable at once."""
    created = request.created_at
    if created is None:
        created = dt.datetime.now(dt.UTC).timestamp()
    record = ItemRecord(
        item_id=request.id,
        title=request.title,
        fields=dict(request.fields),
        tags=[TagRecord(tag) for tag in request.tags if tag.strip()],
        created_at=created,
    )
    try:
        add_item(record)
    except (ModelNotFittedError, IndexMismatchError) as exc:
        raise _not_fitted(exc) from None
    stored = store.get_item_records([request.id])[0]
    return ItemPublic(
        id=stored.item_id,
        title=stored.title,
        fields=stored.fields,
        tags=[tag.text for tag in stored.tags],
    )
