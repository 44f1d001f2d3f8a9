"""Liveness and readiness: `/healthz` says the process answers, `/readyz` that it can work.

Readiness checks the database (a query and a current schema), the broker
(a Redis ping, when one is configured) and each plugin's models, through the
callables plugins list under `READINESS_KEY` in `ConsolePlugin.extra`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from shared.console import READINESS_KEY, ConsolePlugin
from shared.settings import get_settings
from shared.storage import ensure_database_ready, get_engine

__all__ = ["build_health_router", "check_broker", "check_database"]

logger = logging.getLogger(__name__)

# A readiness probe must answer quickly; a broker slower than this counts as down.
BROKER_TIMEOUT_S = 2.0


def check_database() -> dict[str, Any]:
    """Run a query and compare the schema with the migrations."""
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    ensure_database_ready()
    return {"ok": True}


def check_broker() -> dict[str, Any]:
    """Ping the Celery broker; without one, tasks run in-process and this passes."""
    url = get_settings().broker_url
    if not url:
        return {"ok": True, "mode": "in-process"}
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True, "mode": "celery"}


def _run(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return check()
    except Exception as exc:  # a probe reports every failure instead of raising it
        logger.error("readiness check failed check=%s error=%s", check.__name__, exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def build_health_router(plugins: Sequence[ConsolePlugin]) -> APIRouter:
    """Build the `/healthz` and `/readyz` routes for an app with these plugins."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answer as long as the process serves requests."""
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz(request: Request) -> JSONResponse:
        """Check the database, the broker and the plugins' models."""
        checks = {"database": _run(check_database), "broker": _run(check_broker)}
        for plugin in plugins:
            check = plugin.extra.get(READINESS_KEY)
            if callable(check):
                checks[f"models:{plugin.name}"] = _run(check)
        ready = all(result["ok"] for result in checks.values())
        code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
        return JSONResponse({"ready": ready, "checks": checks}, status_code=code)

    return router
