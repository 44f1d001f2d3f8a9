"""The Jinja environment of the console and the context every page gets.

Templates are found in the console's folder first, then in each plugin's. The
context processor adds ``user``, ``language``, ``nav`` (the links the user's
role may open), ``csrf_token`` and the gettext callables ``_``, ``gettext``
and ``ngettext`` in the request's language. The callables fill
``%(name)s`` placeholders from keyword arguments, as Jinja's newstyle gettext
does, and autoescaping escapes the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request

from shared.console import ConsolePlugin, ConsoleUser, NavLink
from shared.i18n import LANGUAGES, get_translations

__all__ = ["TEMPLATES_DIR", "build_gettext", "build_templates", "visible_links"]

TEMPLATES_DIR = Path(__file__).parent / "templates"


def build_gettext(language: str) -> tuple[Callable[..., str], Callable[..., str]]:
    """Return ``gettext`` and ``ngettext`` for `language` that fill placeholders."""
    translations = get_translations(language)

    def gettext(message: str, **values: Any) -> str:
        text = translations.gettext(message)
        return text % values if values else text

    def ngettext(singular: str, plural: str, count: int, **values: Any) -> str:
        values.setdefault("num", count)
        return translations.ngettext(singular, plural, count) % values

    return gettext, ngettext


def visible_links(links: Sequence[NavLink], user: ConsoleUser | None) -> list[NavLink]:
    """Return the links `user` may open: admins see every link."""
    if user is None:
        return []
    return [link for link in links if user.role == "admin" or user.role in link.roles]


def _page_context(request: Request) -> dict[str, Any]:
    state = request.state
    user = getattr(state, "user", None)
    language = getattr(state, "language", "en")
    gettext, ngettext = build_gettext(language)
    return {
        "user": user,
        "language": language,
        "languages": LANGUAGES,
        "nav": visible_links(request.app.state.nav, user),
        "csrf_token": getattr(state, "csrf_token", ""),
        "current_path": request.url.path,
        "_": gettext,
        "gettext": gettext,
        "ngettext": ngettext,
    }


def build_templates(plugins: Sequence[ConsolePlugin]) -> Jinja2Templates:
    """Build the templates object the console keeps on ``app.state.templates``."""
    folders = [TEMPLATES_DIR] + [
        plugin.templates
        for plugin in plugins
        if plugin.templates is not None and plugin.templates != TEMPLATES_DIR
    ]
    environment = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(folder)) for folder in folders]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
    )
    # Defaults for templates rendered outside a request; pages get per-request callables.
    environment.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    return Jinja2Templates(env=environment, context_processors=[_page_context])
