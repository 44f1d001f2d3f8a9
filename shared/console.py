"""What a service hands the web console: API routes, pages, templates and links.

The console (``services/console``) finds every `ConsolePlugin` through the
``diptych.console`` entry-point group. It mounts `api_router` under
``/api/v1`` and `page_router` at the root, adds `templates` to its Jinja
loader (page templates extend the console's ``base.html``), and shows each
`NavLink` to the users whose role may open it.

The console authenticates every request and puts the signed-in user on
``request.state.user`` as a `ConsoleUser`. Routes declare who may use them
with `require_role`; services never import the console itself.

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

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, status

__all__ = [
    "ROLES",
    "ConsolePlugin",
    "ConsoleUser",
    "NavLink",
    "current_user",
    "load_console_plugins",
    "require_role",
]

ENTRY_POINT_GROUP = "diptych.console"
ROLES = ("agent", "analyst", "admin")


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
    """FastAPI dependency: the signed-in user, or 401 when nobody is signed in."""
    user = getattr(request.state, "user", None)
    if not isinstance(user, ConsoleUser):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
    return user


def require_role(*roles: str) -> Callable[[Request], ConsoleUser]:
    """FastAPI dependency factory: allow `roles` (and ``admin``), refuse others with 403."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are {list(ROLES)}")
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
                f"entry point {entry.name!r} ({entry.value}) gave {type(plugin).__name__}, "
                "not a ConsolePlugin"
            )
        plugins.append(plugin)
    return plugins
