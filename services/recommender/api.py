"""REST routes of the recommender; the console mounts this router under ``/api/v1``."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from services.recommender import store
from services.recommender.catalogue import MAX_EXTERNAL_ID_LENGTH, MAX_ID, ItemRecord, TagRecord
from services.recommender.ranking import RecommenderModel
from services.recommender.reasons import describe_reason_in
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
from services.recommender.store import IdConflictError, StoredRecommendation
from shared.errors import IndexMismatchError, RetrievalError
from shared.i18n import DEFAULT_LANGUAGE, negotiate_language, normalize_language

__all__ = ["build_recommendation_list", "choose_language", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["recommender"])

_MAX_QUERY = 1000


def _check_key(value: int, *, name: str) -> int:
    if not 1 <= value <= MAX_ID:
        raise PydanticCustomError(
            "id_out_of_range",
            "`{name}` must be an integer from 1 to {maximum}, got {value}; "
            "ids are positive 32-bit integers",
            {"name": name, "maximum": MAX_ID, "value": value},
        )
    return value


def _check_no_nul(value: str | None, *, name: str) -> str | None:
    # PostgreSQL text columns cannot store the NUL character.
    if value is not None and "\x00" in value:
        raise PydanticCustomError(
            "nul_character",
            "`{name}` contains a NUL character (U+0000); remove it",
            {"name": name},
        )
    return value


RunId = Annotated[
    str | None,
    Query(max_length=100, description="A batch run's id; default the latest run."),
    AfterValidator(functools.partial(_check_no_nul, name="run_id")),
]


# A validator checks the range instead of `ge`/`le`, so that the 422 message
# names the parameter. The schema still shows the bounds.
_KEY_BOUNDS = {"minimum": 1, "maximum": MAX_ID}
UserKey = Annotated[
    int,
    Path(description="The user's id, from 1 to 2**31 - 1.", json_schema_extra=_KEY_BOUNDS),
    AfterValidator(functools.partial(_check_key, name="user_id")),
]
ItemKey = Annotated[
    int,
    Path(description="The item's id, from 1 to 2**31 - 1.", json_schema_extra=_KEY_BOUNDS),
    AfterValidator(functools.partial(_check_key, name="item_id")),
]


def choose_language(request: Request) -> str:
    """Return the language for texts in a response: Accept-Language, else the user's choice.

    A header that names a served language wins, so an API client can ask for
    English or Chinese per request. Without one (or with ``*`` or only other
    languages) the signed-in user's console language applies, else English.
    """
    user = getattr(request.state, "user", None)
    preferred = normalize_language(getattr(user, "language", None) or DEFAULT_LANGUAGE)
    return negotiate_language(request.headers.get("accept-language"), default=preferred)


def _set_language_headers(response: Response, language: str) -> None:
    # Content-Language takes a BCP 47 language tag, which writes zh_CN as zh-CN.
    response.headers["Content-Language"] = language.replace("_", "-")
    response.headers["Vary"] = "Accept-Language"


def _not_fitted(exc: RetrievalError) -> HTTPException:
    # Not fitted yet, or fitted with another encoder: the fix is `diptych recommend fit`.
    return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))


@router.get("/recommendations/{user_id}", response_model=RecommendationList)
def get_recommendations(
    request: Request,
    response: Response,
    user_id: UserKey,
    top_n: Annotated[int, Query(ge=1, le=200)] = 10,
    run_id: RunId = None,
    query: Annotated[str | None, Query(max_length=_MAX_QUERY)] = None,
    fresh: bool = False,
) -> RecommendationList:
    """Return a user's list from the latest batch run, or computed now."""
    language = choose_language(request)
    _set_language_headers(response, language)
    return _build_or_raise(
        user_id, top_n=top_n, run_id=run_id, query=query, fresh=fresh, language=language
    )


@router.get("/recommendations", response_model=RecommendationList)
def get_recommendations_by_external_id(
    request: Request,
    response: Response,
    external_user_id: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_EXTERNAL_ID_LENGTH,
            description="The user's string id, as in the imported interactions.",
        ),
        AfterValidator(functools.partial(_check_no_nul, name="external_user_id")),
    ],
    top_n: Annotated[int, Query(ge=1, le=200)] = 10,
    run_id: RunId = None,
    query: Annotated[str | None, Query(max_length=_MAX_QUERY)] = None,
    fresh: bool = False,
) -> RecommendationList:
    """Return the list of a user named by string id; an unknown one gets a cold-start list."""
    language = choose_language(request)
    _set_language_headers(response, language)
    external_user_id = external_user_id.strip()
    user_id = store.find_user_key(external_user_id)
    listing = _build_or_raise(
        user_id, top_n=top_n, run_id=run_id, query=query, fresh=fresh, language=language
    )
    listing.user_external_id = external_user_id
    return listing


def _build_or_raise(user_id: int | None, **options: Any) -> RecommendationList:
    try:
        return build_recommendation_list(user_id, **options)
    except (ModelNotFittedError, IndexMismatchError) as exc:
        raise _not_fitted(exc) from None
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


def build_recommendation_list(
    user_id: int | None,
    *,
    top_n: int,
    run_id: str | None,
    query: str | None,
    fresh: bool,
    language: str = DEFAULT_LANGUAGE,
) -> RecommendationList:
    """Read the stored list of `user_id`, or compute one when there is none or `fresh` is set.

    A None `user_id` is a user unknown to the store, who gets a cold-start list.
    Each item's `reason_text` is written in `language` (``en`` or ``zh_CN``).

    Raises:
        LookupError: If `run_id` names no run.
        ModelNotFittedError: If a list must be computed and nothing was fitted yet.
    """
    model = get_serving_model()
    chosen_run = run_id or store.latest_run_id()
    if run_id is not None and run_id != store.latest_run_id() and not store.run_exists(run_id):
        raise LookupError(f"Run {run_id!r} not found; omit `run_id` for the latest run.")
    stored = []
    if not fresh and chosen_run is not None and user_id is not None:
        stored = store.read_recommendations(chosen_run, user_id)[:top_n]
    if not stored:
        chosen_run = None
        stored = _compute_list(model, user_id, top_n=top_n, query=query)
    titles = dict(zip(model.catalogue.item_ids.tolist(), model.catalogue.titles, strict=True))
    external_ids = store.get_item_external_ids([row.item_id for row in stored])
    items = [
        RecommendationPublic(
            rank=row.rank,
            item_id=row.item_id,
            external_id=external_ids.get(row.item_id),
            title=titles.get(row.item_id, ""),
            score=row.score,
            reason=row.reason,
            reason_text=describe_reason_in(
                language,
                row.reason,
                anchor_title=titles.get(row.reason_item_id or -1),
                tag=row.reason_tag,
            ),
            reason_item_id=row.reason_item_id,
            reason_tag=row.reason_tag,
        )
        for row in stored
    ]
    return RecommendationList(
        user_id=user_id,
        user_external_id=None if user_id is None else store.get_user_external_id(user_id),
        run_id=chosen_run,
        items=items,
    )


def _compute_list(
    model: RecommenderModel, user_id: int | None, *, top_n: int, query: str | None
) -> list[StoredRecommendation]:
    ids = model.catalogue.item_ids
    return [
        StoredRecommendation(
            rank=rank,
            item_id=int(ids[rec.row]),
            score=rec.score,
            reason=rec.reason,
            reason_item_id=None if rec.reason_row is None else int(ids[rec.reason_row]),
            reason_tag=rec.reason_tag,
        )
        for rank, rec in enumerate(
            recommend_for_users([user_id], top_n=top_n, query=query)[0], start=1
        )
    ]


@router.get("/items/{item_id}/similar", response_model=list[SimilarItemPublic])
def get_similar_items(
    item_id: ItemKey, count: Annotated[int, Query(ge=1, le=200)] = 10
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
    external_ids = store.get_item_external_ids([i for i, _score in found])
    return [
        SimilarItemPublic(
            item_id=i, external_id=external_ids.get(i), title=titles.get(i, ""), score=score
        )
        for i, score in found
    ]


@router.post(
    "/items",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemPublic,
    responses={
        status.HTTP_200_OK: {
            "model": ItemPublic,
            "description": "An item with this id was stored already: it was updated (and "
            "embedded again if its text changed), or it was unchanged.",
        },
        status.HTTP_409_CONFLICT: {
            "description": "The `id` and `external_id` name different stored items, or "
            "nothing was fitted yet."
        },
    },
)
def create_item(request: ItemCreate, response: Response) -> ItemPublic:
    """Add an item, or update the stored item with the same id; either is recommendable at once."""
    record = ItemRecord(
        item_id=request.id,
        external_id=request.external_id,
        title=request.title,
        fields=dict(request.fields),
        tags=[TagRecord(tag) for tag in request.tags if tag.strip()],
        created_at=math.nan if request.created_at is None else request.created_at,
    )
    try:
        stored, change = add_item(record, default_created_at=dt.datetime.now(dt.UTC).timestamp())
    except (ModelNotFittedError, IndexMismatchError) as exc:
        raise _not_fitted(exc) from None
    except IdConflictError as exc:
        logger.info("item rejected caller_id=%r reason=id conflict", record.caller_id)
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    if change != "created":
        response.status_code = status.HTTP_200_OK
    assert stored.item_id is not None, "a stored item always has a key"
    return ItemPublic(
        id=stored.item_id,
        external_id=stored.external_id,
        title=stored.title,
        fields=stored.fields,
        tags=[tag.text for tag in stored.tags],
        change=change,
    )
