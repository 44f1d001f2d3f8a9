"""The support service's share of the console: agent pages, the REST API and navigation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends

from services.support.api import router as support_api_router
from services.support.pages import router as support_page_router
from shared.console import READINESS_KEY, ConsolePlugin, NavLink, require_role
from shared.i18n import N_
from shared.registry import find_version
from shared.settings import get_settings

__all__ = ["TRANSLATED_VALUES", "check_models", "plugin"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
# Ticket statuses and feedback actions, which the templates translate by value.
TRANSLATED_VALUES = (
    N_("new"),
    N_("triaged"),
    N_("retrieved"),
    N_("drafted"),
    N_("answered"),
    N_("closed"),
    N_("accept"),
    N_("edit"),
    N_("reject"),
)


def check_models() -> dict[str, Any]:
    """Check that the intent model has a production version whose folder exists.

    Raises:
        ModelVersionNotFoundError: If no version of the intent model is in production.
        FileNotFoundError: If the production version's folder is missing.
    """
    reference = get_settings().support.intent_model
    row = find_version(reference)
    model_dir = Path(row.path) / "model"
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder of {row.reference} is missing: {model_dir}")
    return {"ok": True, "intent_model": row.reference}


def plugin() -> ConsolePlugin:
    """Build the support plugin; the API routes need the agent role, like the pages."""
    api_router = APIRouter(dependencies=[Depends(require_role("agent"))])
    api_router.include_router(support_api_router)
    return ConsolePlugin(
        name="support",
        api_router=api_router,
        page_router=support_page_router,
        nav=(
            NavLink("/support", N_("Tickets"), ("agent",)),
            NavLink("/support/kb", N_("Knowledge base"), ("agent",)),
        ),
        templates=TEMPLATES_DIR,
        extra={READINESS_KEY: check_models},
    )
