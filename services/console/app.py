"""The console's FastAPI app: every plugin's API under ``/api/v1`` and its pages at the root.

`create_app` builds the app from the plugins registered under the
``diptych.console`` entry-point group (or the ones a caller passes), plus the
console's own: sign-in, the home page and the models page. `diptych serve`
runs it with uvicorn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Security, status
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import pages, registry_views
from services.console.health import build_health_router
from services.console.metrics import ConsoleMetrics, MetricsMiddleware, metrics_response
from services.console.rendering import TEMPLATES_DIR, build_templates
from services.console.security import AuthMiddleware, is_api_path
from shared.api import install_error_handlers
from shared.console import (
    ConsolePlugin,
    ConsoleUser,
    NavLink,
    current_user,
    load_console_plugins,
    render_page,
)
from shared.i18n import N_

__all__ = ["build_console_plugin", "create_app"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# Under /static/, which needs no sign-in, like the console's own static files.
API_DOCS_STATIC_URL = "/static/api-docs"


class UserPublic(BaseModel):
    """The signed-in user as the API shows it."""

    id: int
    username: str
    role: str
    language: str
    timezone: str


def _build_me_router() -> APIRouter:
    router = APIRouter(prefix="/console", tags=["console"])

    @router.get("/me", response_model=UserPublic)
    def read_me(user: Annotated[ConsoleUser, Depends(current_user)]) -> UserPublic:
        """Return the user the request is signed in as."""
        return UserPublic(**user.__dict__)

    return router


def build_console_plugin() -> ConsolePlugin:
    """Return the console's own share: sign-in, home and models pages, its API routes."""
    page_router = APIRouter()
    page_router.include_router(pages.router)
    page_router.include_router(registry_views.page_router)
    api_router = APIRouter()
    api_router.include_router(_build_me_router())
    api_router.include_router(registry_views.api_router)
    return ConsolePlugin(
        name="console",
        api_router=api_router,
        page_router=page_router,
        nav=(NavLink("/models", N_("Models"), ("admin",)),),
        templates=TEMPLATES_DIR,
        static=STATIC_DIR,
    )


def _version() -> str:
    try:
        return version("diptych")
    except PackageNotFoundError:
        return "0"


def create_app(plugins: Sequence[ConsolePlugin] | None = None) -> FastAPI:
    """Build the console.

    Args:
        plugins: The services' plugins; by default those registered under
            ``diptych.console``.

    Returns:
        The app, ready for uvicorn.
    """
    found = load_console_plugins() if plugins is None else list(plugins)
    all_plugins = [build_console_plugin(), *found]
    # fastapi-offline serves Swagger UI's script and style sheet from files in its
    # package, so the API docs load on machines without Internet access.
    app = FastAPIOffline(
        title="Diptych",
        version=_version(),
        description="REST API of the Diptych services. Send `Authorization: Bearer <API token>`.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        static_url=API_DOCS_STATIC_URL,
        # Swagger UI would otherwise send the schema to an online validator.
        swagger_ui_parameters={"validatorUrl": None},
    )
    install_error_handlers(app)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.state.plugins = all_plugins
    app.state.nav = [link for plugin in found for link in plugin.nav] + list(all_plugins[0].nav)
    app.state.templates = build_templates(all_plugins)
    app.state.metrics = ConsoleMetrics()
    # Set by `services.console.serving.ConsoleServer` on the first stop signal.
    app.state.shutdown = threading.Event()
    _mount_plugins(app, all_plugins)
    app.include_router(build_health_router(all_plugins))

    @app.get("/metrics", include_in_schema=False)
    def read_metrics() -> Response:
        """Expose the Prometheus metrics."""
        return metrics_response(app.state.metrics)

    app.add_middleware(AuthMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    logger.info("console built plugins=%s", ",".join(plugin.name for plugin in all_plugins))
    return app


def _mount_plugins(app: FastAPI, plugins: Sequence[ConsolePlugin]) -> None:
    # Declares the bearer scheme in the OpenAPI schema; the middleware does the checking.
    bearer = Security(HTTPBearer(auto_error=False))
    for plugin in plugins:
        if plugin.api_router is not None:
            app.include_router(plugin.api_router, prefix="/api/v1", dependencies=[bearer])
        if plugin.page_router is not None:
            app.include_router(plugin.page_router, include_in_schema=False)
        if plugin.static is not None:
            app.mount(
                f"/static/{plugin.name}",
                StaticFiles(directory=plugin.static),
                name=f"static-{plugin.name}",
            )


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Answer API errors in JSON and page errors with a page in the user's language."""
    if is_api_path(request.url.path):
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
    if exc.status_code == status.HTTP_401_UNAUTHORIZED:
        return RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    return render_page(
        request,
        "console/error.html",
        {"status_code": exc.status_code, "detail": exc.detail},
        status_code=exc.status_code,
    )
