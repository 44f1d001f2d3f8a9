"""Console plugin of the recommender: the API routes and a page of a user's history and list.

Both are open to the ``analyst`` role (the recommendation team's role in the
console) and to ``admin``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from services.recommender import store
from services.recommender.api import build_recommendation_list
from services.recommender.api import router as api_routes
from services.recommender.catalogue import MAX_ID
from services.recommender.serving import ModelNotFittedError, get_serving_model
from shared.console import ConsolePlugin, ConsoleUser, NavLink, render_page, require_role
from shared.errors import IndexMismatchError
from shared.i18n import normalize_language
from shared.settings import get_settings

__all__ = ["HISTORY_LIMIT", "plugin"]

TEMPLATES = Path(__file__).parent / "templates"
ROLE = "analyst"
HISTORY_LIMIT = 50

page_router = APIRouter(dependencies=[Depends(require_role(ROLE))])


@page_router.get("/recommender", response_class=HTMLResponse)
def recommender_page(
    request: Request,
    user: Annotated[ConsoleUser, Depends(require_role(ROLE))],
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    """Show a user's recent history beside their recommendations."""
    context: dict[str, object] = {"user_id": user_id, "history": [], "items": [], "error": None}
    if user_id is not None:
        try:
            context.update(_build_context(user_id, language=user.language))
        except (ModelNotFittedError, IndexMismatchError):
            context["error"] = "not_fitted"
    return render_page(request, "recommender/page.html", context)


def _build_context(user_id: int, *, language: str) -> dict[str, object]:
    model = get_serving_model()
    titles = dict(zip(model.catalogue.item_ids.tolist(), model.catalogue.titles, strict=True))
    settings = get_settings().recommender
    log = store.load_user_interactions(
        [user_id],
        like_threshold=settings.like_threshold,
        dislike_threshold=settings.dislike_threshold,
    )
    history = [
        {
            "item_id": int(item),
            "title": titles.get(int(item), str(int(item))),
            "value": None if value != value else float(value),
            "preference": int(preference),
            "time": dt.datetime.fromtimestamp(float(time), tz=dt.UTC).strftime("%Y-%m-%d"),
        }
        for item, value, preference, time in zip(
            log.items[::-1][:HISTORY_LIMIT],
            log.values[::-1][:HISTORY_LIMIT],
            log.preferences[::-1][:HISTORY_LIMIT],
            log.times[::-1][:HISTORY_LIMIT],
            strict=True,
        )
    ]
    listing = build_recommendation_list(
        user_id,
        top_n=settings.top_n,
        run_id=None,
        query=None,
        fresh=False,
        language=normalize_language(language),
    )
    items = [
        {
            "rank": item.rank,
            "item_id": item.item_id,
            "title": item.title,
            "score": item.score,
            "reason": item.reason_text,
        }
        for item in listing.items
    ]
    return {
        "history": history,
        "history_total": len(log),
        "items": items,
        "run_id": listing.run_id,
    }


def plugin() -> ConsolePlugin:
    """Return the recommender's share of the console."""
    api_router = APIRouter(dependencies=[Depends(require_role(ROLE))])
    api_router.include_router(api_routes)
    return ConsolePlugin(
        name="recommender",
        api_router=api_router,
        page_router=page_router,
        nav=(NavLink("/recommender", "Recommendations", (ROLE,)),),
        templates=TEMPLATES,
    )
