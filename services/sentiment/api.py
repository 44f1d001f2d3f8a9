"""REST routes of the sentiment service; the console mounts this router under ``/api/v1``."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status
from fastapi.responses import Response
from pydantic import ValidationError

from services.sentiment import actions, store
from services.sentiment.dashboard import pick_surge_rule, rank_entities
from services.sentiment.gazetteer import load_default_gazetteer
from services.sentiment.rules import load_rules
from services.sentiment.schemas import (
    MAX_BATCH_ITEMS,
    AlertPublic,
    BatchAccepted,
    BatchItemError,
    BucketPublic,
    EntityRankPublic,
    ItemAccepted,
    ItemCreate,
    ItemPublic,
    SilenceCreate,
    SilencePublic,
)
from services.sentiment.timeutil import GRANULARITIES, parse_granularity, utcnow
from shared.console import ConsoleUser, require_role
from shared.errors import RegistryError
from shared.settings import get_settings
from shared.storage import session_scope

__all__ = ["router"]

router = APIRouter(
    prefix="/sentiment",
    tags=["sentiment"],
    dependencies=[Depends(require_role("analyst"))],
)
Analyst = Annotated[ConsoleUser, Depends(require_role("analyst"))]
# Ids are 32-bit in both databases, so a larger one is a client error, not a lookup.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Granularity = Annotated[str, Query(pattern="^(5m|1h|1d)$", description="Bucket: 5m, 1h or 1d.")]


def _take_in(items: list[ItemCreate]) -> tuple[list[str], int, bool]:
    """Queue `items` on the stream when Redis is configured, else score and store them now.

    Raises:
        HTTPException: 409 when no sentiment model is in production, 503 when Redis is down.
    """
    try:
        return _queue_or_store(items)
    except RegistryError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"no sentiment model to score with ({exc}); train and promote one with "
            "`diptych train classifier --dataset phrasebank --name sentiment --promote`",
        ) from None
    except redis.RedisError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the item stream is unavailable ({exc}); check DIPTYCH_REDIS_URL and retry",
        ) from None


def _queue_or_store(items: list[ItemCreate]) -> tuple[list[str], int, bool]:
    unique: dict[str, ItemCreate] = {}
    for item in items:
        unique.setdefault(item.id, item)
    repeats = len(items) - len(unique)
    settings = get_settings()
    if settings.redis_url or settings.broker_url:
        from services.sentiment.stream import connect_redis, ensure_group, publish_items

        client = connect_redis()
        ensure_group(client, stream=settings.sentiment.stream, group=settings.sentiment.group)
        payloads = [item.model_dump(mode="json") for item in unique.values()]
        publish_items(client, payloads, stream=settings.sentiment.stream)
        return list(unique), repeats, True
    from services.sentiment.pipeline import score_and_store

    result = score_and_store(list(unique.values()))
    return list(unique), repeats + len(result.duplicates), False


@router.post("/items", status_code=status.HTTP_202_ACCEPTED, response_model=ItemAccepted)
def create_item(item: ItemCreate) -> ItemAccepted:
    """Submit one item for scoring."""
    ids, duplicates, queued = _take_in([item])
    return ItemAccepted(
        accepted=len(ids) - duplicates, duplicates=duplicates, queued=queued, ids=ids
    )


@router.post("/items/batch", status_code=status.HTTP_202_ACCEPTED, response_model=BatchAccepted)
def create_items(
    items: Annotated[
        list[dict[str, Any]], Body(embed=True, min_length=1, max_length=MAX_BATCH_ITEMS)
    ],
) -> BatchAccepted:
    """Submit several items; an invalid one is reported and does not stop the others."""
    valid: list[ItemCreate] = []
    errors = []
    for index, raw in enumerate(items):
        try:
            valid.append(ItemCreate.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "item"
            raw_id = raw.get("id")
            errors.append(
                BatchItemError(
                    index=index,
                    id=str(raw_id)[:200] if raw_id is not None else None,
                    error=f"{where}: {first['msg']}",
                )
            )
    ids, duplicates, queued = _take_in(valid) if valid else ([], 0, False)
    return BatchAccepted(
        accepted=len(ids) - (duplicates if not queued else 0),
        duplicates=duplicates,
        queued=queued,
        ids=ids,
        errors=errors,
    )


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


@router.get("/entities", response_model=list[EntityRankPublic])
def list_entities(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[EntityRankPublic]:
    """Rank entities by how far their newest negative share is above their baseline."""
    rule = pick_surge_rule(load_rules())
    gazetteer = load_default_gazetteer()
    with session_scope() as session:
        ranks = rank_entities(session, rule, limit=limit)
    return [
        EntityRankPublic(
            entity=rank.entity,
            name=gazetteer.name_of(rank.entity),
            surge=_none_if_nan(rank.surge),
            negative_share=rank.negative_share,
            baseline_mean=_none_if_nan(rank.baseline_mean),
            baseline_spread=_none_if_nan(rank.baseline_spread),
            volume=rank.volume,
            bucket_start=rank.bucket_start,
            firing=rank.firing,
        )
        for rank in ranks
    ]


def _series_window(
    granularity: str, end: dt.datetime | None, buckets: int
) -> tuple[dt.datetime, dt.datetime]:
    width = dt.timedelta(seconds=parse_granularity(granularity))
    end = end or utcnow()
    return end - width * buckets, end


def load_series(
    entity: str, granularity: str, end: dt.datetime | None, buckets: int
) -> list[tuple[dt.datetime, store.BucketCounts]]:
    """Return an entity's buckets ending at `end`, or at its newest bucket when `end` is None."""
    with session_scope() as session:
        if end is None:
            newest = store.list_bucket_series(
                session,
                entity=entity,
                granularity=granularity,
                start=dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
                end=dt.datetime(9999, 1, 1, tzinfo=dt.UTC),
            )
            if not newest:
                return []
            end = newest[-1][0] + dt.timedelta(seconds=GRANULARITIES[granularity])
        start, end = _series_window(granularity, end, buckets)
        return store.list_bucket_series(
            session, entity=entity, granularity=granularity, start=start, end=end
        )


@router.get("/entities/{entity}/buckets", response_model=list[BucketPublic])
def list_buckets(
    entity: str,
    granularity: Granularity = "1h",
    end: dt.datetime | None = None,
    buckets: Annotated[int, Query(ge=1, le=2000)] = 168,
) -> list[BucketPublic]:
    """Return an entity's buckets (UTC starts) ending at `end`, default its newest bucket."""
    series = load_series(entity.upper(), granularity, end, buckets)
    return [
        BucketPublic(
            start=start,
            positive=counts.positive,
            neutral=counts.neutral,
            negative=counts.negative,
            volume=counts.volume,
            mean_score=counts.mean_score,
            negative_share=counts.negative_share,
        )
        for start, counts in series
    ]


@router.get("/entities/{entity}/chart.png", response_class=Response)
def entity_chart(
    entity: str,
    user: Analyst,
    granularity: Granularity = "1h",
    buckets: Annotated[int, Query(ge=2, le=2000)] = 168,
) -> Response:
    """Render an entity's sentiment and volume chart as PNG, times in the user's zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from services.sentiment.charts import render_trend_png

    try:
        ZoneInfo(user.timezone)
        timezone = user.timezone
    except (ZoneInfoNotFoundError, ValueError):
        timezone = "UTC"
    series = load_series(entity.upper(), granularity, None, buckets)
    png = render_trend_png(series, title=f"{entity.upper()} ({granularity})", timezone=timezone)
    return Response(content=png, media_type="image/png")


@router.get("/entities/{entity}/items", response_model=list[ItemPublic])
def list_entity_items(
    entity: str,
    label: Annotated[str | None, Query(pattern="^(positive|neutral|negative)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ItemPublic]:
    """Return the items that mention an entity, newest first."""
    with session_scope() as session:
        items = store.list_items(
            session, entity=entity.upper(), label=label, limit=limit, offset=offset
        )
        return [ItemPublic.model_validate(item) for item in items]


@router.get("/alerts", response_model=list[AlertPublic])
def list_alerts(
    state: Annotated[list[str] | None, Query()] = None,
    entity: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertPublic]:
    """Return alert episodes, newest first."""
    allowed = {"pending", "firing", "resolved", "inactive"}
    unknown = sorted(set(state or []) - allowed)
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid state(s) {unknown}: use {sorted(allowed)}",
        )
    with session_scope() as session:
        alerts = store.list_alerts(
            session, states=state, entity=entity.upper() if entity else None, limit=limit
        )
        return [AlertPublic.model_validate(alert) for alert in alerts]


@router.post("/alerts/{alert_id}/ack", response_model=AlertPublic)
def acknowledge(alert_id: RowId, user: Analyst) -> AlertPublic:
    """Acknowledge an alert; it is no longer repeated while it fires."""
    try:
        alert = actions.acknowledge_alert(alert_id, by=user.username)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return AlertPublic.model_validate(alert)


@router.get("/silences", response_model=list[SilencePublic])
def list_silences(include_expired: bool = False) -> list[SilencePublic]:
    """Return the active silences (or all of them)."""
    with session_scope() as session:
        silences = store.list_silences(session, now=utcnow(), active_only=not include_expired)
        return [SilencePublic.model_validate(silence) for silence in silences]


@router.post("/silences", status_code=status.HTTP_201_CREATED, response_model=SilencePublic)
def create_silence(request: SilenceCreate, user: Analyst) -> SilencePublic:
    """Silence matching alerts for `duration_s` seconds."""
    try:
        silence = actions.create_silence(
            request.matchers,
            duration_s=request.duration_s,
            by=user.username,
            comment=request.comment,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return SilencePublic.model_validate(silence)


@router.delete("/silences/{silence_id}", response_model=SilencePublic)
def expire_silence(silence_id: RowId) -> SilencePublic:
    """End a silence now."""
    try:
        silence = actions.expire_silence(silence_id)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return SilencePublic.model_validate(silence)
