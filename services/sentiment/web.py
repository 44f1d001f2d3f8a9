"""The sentiment dashboard in the console: entity ranking, entity pages, alerts and silences."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from services.sentiment import actions, store
from services.sentiment.api import router as api_router
from services.sentiment.dashboard import pick_surge_rule, rank_entities
from services.sentiment.gazetteer import load_default_gazetteer
from services.sentiment.rules import load_rules
from services.sentiment.timeutil import utcnow
from shared.console import ConsolePlugin, ConsoleUser, NavLink, render_page, require_role
from shared.storage import session_scope

__all__ = ["build_plugin", "page_router", "plugin"]

page_router = APIRouter(prefix="/sentiment", dependencies=[Depends(require_role("analyst"))])
Analyst = Annotated[ConsoleUser, Depends(require_role("analyst"))]


def _zone(user: ConsoleUser) -> ZoneInfo:
    try:
        return ZoneInfo(user.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local(value: dt.datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


@page_router.get("", response_class=HTMLResponse)
def ranking_page(request: Request, user: Analyst) -> HTMLResponse:
    """Entities ranked by current surge."""
    rule = pick_surge_rule(load_rules())
    gazetteer = load_default_gazetteer()
    zone = _zone(user)
    with session_scope() as session:
        ranks = rank_entities(session, rule, limit=100)
    rows = [
        {
            "entity": rank.entity,
            "url": f"/sentiment/entities/{quote(rank.entity, safe='')}",
            "name": gazetteer.name_of(rank.entity),
            "surge": _number(rank.surge),
            "negative_share": _number(rank.negative_share),
            "baseline": f"{_number(rank.baseline_mean)} ± {_number(rank.baseline_spread)}",
            "volume": rank.volume,
            "bucket": _local(rank.bucket_start, zone),
            "firing": rank.firing,
        }
        for rank in ranks
    ]
    return render_page(
        request, "sentiment/ranking.html", {"rows": rows, "bucket": rule.bucket, "rule": rule.name}
    )


@page_router.get("/entities/{entity}", response_class=HTMLResponse)
def entity_page(
    request: Request, entity: str, user: Analyst, granularity: str = "1h"
) -> HTMLResponse:
    """Render one entity's page: its chart, alerts and items."""
    if granularity not in ("5m", "1h", "1d"):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid granularity {granularity!r}: use 5m, 1h or 1d",
        )
    symbol = entity.upper()
    zone = _zone(user)
    with session_scope() as session:
        items = store.list_items(session, entity=symbol, limit=100)
        alerts = store.list_alerts(session, entity=symbol, limit=20)
        total = store.count_items(session, entity=symbol)
        item_rows = [
            {
                "id": item.external_id,
                "published": _local(item.published_at, zone),
                "label": item.label,
                "score": f"{item.score:+.2f}",
                "text": item.text,
            }
            for item in items
        ]
        alert_rows = [_alert_row(alert, zone) for alert in alerts]
    context: dict[str, Any] = {
        "entity": symbol,
        "name": load_default_gazetteer().name_of(symbol),
        "granularity": granularity,
        "chart_url": f"/api/v1/sentiment/entities/{quote(symbol, safe='')}/chart.png"
        f"?granularity={granularity}",
        "items": item_rows,
        "alerts": alert_rows,
        "total": total,
        "timezone": str(zone),
    }
    return render_page(request, "sentiment/entity.html", context)


def _alert_row(alert: Any, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "entity": alert.entity,
        "severity": alert.severity,
        "state": alert.state,
        "value": _number(alert.value, 3),
        "started": _local(alert.started_at, zone),
        "fired": _local(alert.fired_at, zone),
        "resolved": _local(alert.resolved_at, zone),
        "acknowledged_by": alert.acknowledged_by,
    }


@page_router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, user: Analyst, state: str | None = None) -> HTMLResponse:
    """Alerts with acknowledge and silence forms, and the active silences."""
    zone = _zone(user)
    states = [state] if state in ("pending", "firing", "resolved", "inactive") else None
    with session_scope() as session:
        alerts = [_alert_row(a, zone) for a in store.list_alerts(session, states=states, limit=200)]
        silences = [
            {
                "id": silence.id,
                "matchers": ", ".join(
                    f"{m['name']}{'=~' if m.get('is_regex') else '='}{m['value']}"
                    for m in silence.matchers
                ),
                "ends": _local(silence.ends_at, zone),
                "created_by": silence.created_by,
                "comment": silence.comment,
            }
            for silence in store.list_silences(session, now=utcnow())
        ]
    return render_page(
        request, "sentiment/alerts.html", {"alerts": alerts, "silences": silences, "state": state}
    )


@page_router.post("/alerts/{alert_id}/ack")
def acknowledge_form(alert_id: int, user: Analyst) -> RedirectResponse:
    """Acknowledge an alert from the alerts page."""
    try:
        actions.acknowledge_alert(alert_id, by=user.username)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return RedirectResponse("/sentiment/alerts", status_code=status.HTTP_303_SEE_OTHER)


@page_router.post("/silences")
def silence_form(
    user: Analyst,
    matchers: Annotated[str, Form(max_length=2000)],
    duration: Annotated[str, Form(max_length=20)] = "2h",
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> RedirectResponse:
    """Create a silence from the alerts page; matchers are separated by commas."""
    try:
        parsed = [actions.parse_matcher(text) for text in matchers.split(",") if text.strip()]
        actions.create_silence(
            parsed, duration_s=actions.parse_duration(duration), by=user.username, comment=comment
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return RedirectResponse("/sentiment/alerts", status_code=status.HTTP_303_SEE_OTHER)


@page_router.post("/silences/{silence_id}/expire")
def expire_form(silence_id: int) -> RedirectResponse:
    """End a silence from the alerts page."""
    try:
        actions.expire_silence(silence_id)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return RedirectResponse("/sentiment/alerts", status_code=status.HTTP_303_SEE_OTHER)


def build_plugin() -> ConsolePlugin:
    """Return the sentiment service's share of the console."""
    return ConsolePlugin(
        name="sentiment",
        api_router=api_router,
        page_router=page_router,
        nav=(
            NavLink("/sentiment", "Sentiment", ("analyst",)),
            NavLink("/sentiment/alerts", "Alerts", ("analyst",)),
        ),
        templates=Path(__file__).parent / "templates",
    )


plugin = build_plugin
