"""Console plugin contract: the API routes, pages, templates and links a service adds.

The console (``services/console``) finds every `ConsolePlugin` through the
``diptych.console`` entry-point group. It mounts `api_router` under
``/api/v1`` and `page_router` at the root, adds `templates` to its Jinja
loader (page templates extend the console's ``base.html``), and shows each
`NavLink` to the users whose role may open it.

The console authenticates every request and puts the signed-in user on
``request.state.user`` as a `ConsoleUser`. Routes declare who may use them
with `require_role`; services never import the console itself.

A response that can run long (a streamed draft) checks `is_shutting_down`
between its pieces: the console sets that flag on the server's first stop
signal, so such a response ends at once instead of holding up the shutdown.

Pages render through `render_page`, which uses the console's
``request.app.state.templates`` (a ``Jinja2Templates`` with the i18n
extension). A page template starts with ``{% extends "base.html" %}`` and
fills the blocks ``title``, ``head``, ``content`` and ``scripts``. The console
adds ``user``, ``language``, ``nav`` and ``csrf_token`` to every page's
context and translates with ``{{ _("English text") }}``. Forms carry the
token in a hidden ``csrf_token`` field; scripts send it in the
``X-CSRF-Token`` header on every unsafe method.

Example::

    router = APIRouter(dependencies=[Depends(require_role("analyst"))])
    plugin = ConsolePlugin(
        name="sentiment",
        page_router=router,
        nav=(NavLink("/sentiment", "Sentiment", ("analyst",)),),
        templates=Path(__file__).parent / "templates",
    )
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse

__all__ = [
    "READINESS_KEY",
    "ROLES",
    "ConsolePlugin",
    "ConsoleUser",
    "NavLink",
    "current_user",
    "is_shutting_down",
    "load_console_plugins",
    "render_page",
    "require_role",
]

ENTRY_POINT_GROUP = "diptych.console"
ROLES = ("agent", "analyst", "admin")
# `ConsolePlugin.extra` key of a zero-argument callable that `/readyz` runs: it returns
# a JSON-ready dict with ``"ok": True`` (and details) or raises when the service cannot work.
READINESS_KEY = "readiness"


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in person (or API token holder) behind a request."""

    id: int
    username: str
    role: str
    language: str = "en"
    timezone: str = "UTC"


@dataclass(frozen=True)
class NavLink:
    """One entry of the console's navigation; `label` is an English msgid."""

    path: str
    label: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class ConsolePlugin:
    """A service's share of the console."""

    name: str
    api_router: Any = None
    page_router: Any = None
    nav: tuple[NavLink, ...] = ()
    templates: Path | None = None
    static: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def current_user(request: Request) -> ConsoleUser:
    """FastAPI dependency: return the signed-in user, or raise 401 when no one is signed in."""
    user = getattr(request.state, "user", None)
    if not isinstance(user, ConsoleUser):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
    return user


def is_shutting_down(request: Request) -> bool:
    """Return whether the server hosting the app has begun to shut down.

    The console keeps a `threading.Event` in ``app.state.shutdown`` and sets it
    on the server's first stop signal. An app without one never reports a shutdown.
    """
    event = getattr(request.app.state, "shutdown", None)
    return isinstance(event, threading.Event) and event.is_set()


def require_role(*roles: str) -> Callable[[Request], ConsoleUser]:
    """Build a FastAPI dependency that allows `roles` (and ``admin``) and raises 403 for others."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"invalid role(s) {unknown}: use one of {list(ROLES)}")
    allowed = {*roles, "admin"}

    def dependency(request: Request) -> ConsoleUser:
        user = current_user(request)
        if user.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {user.role!r} may not open this; it needs one of {sorted(allowed)}",
            )
        return user

    return dependency


def load_console_plugins() -> list[ConsolePlugin]:
    """Return the plugins registered under ``diptych.console``, sorted by name.

    An entry point names a `ConsolePlugin` or a callable that returns one.
    """
    plugins = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        loaded = entry.load()
        plugin = loaded() if callable(loaded) and not isinstance(loaded, ConsolePlugin) else loaded
        if not isinstance(plugin, ConsolePlugin):
            raise TypeError(
                f"invalid console plugin {entry.name!r} ({entry.value}): expected a "
                f"ConsolePlugin, got {type(plugin).__name__}"
            )
        plugins.append(plugin)
    return plugins


def render_page(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render `template` inside the console's page shell.

    Raises:
        RuntimeError: The app has no ``state.templates`` (it is not the console).
    """
    templates = getattr(request.app.state, "templates", None)
    if templates is None:
        raise RuntimeError(
            f"cannot render {template!r}: the app has no state.templates; mount the page "
            "router in the console (services/console) or set app.state.templates in the test"
        )
    response: HTMLResponse = templates.TemplateResponse(
        request, template, context or {}, status_code=status_code
    )
    return response
