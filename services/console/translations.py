"""Find the visible text that lacks a translation.

Messages are extracted with Babel from the templates (Jinja's extractor) and
the Python modules (``_``, ``gettext``, ``N_`` ...) of the console and of
every plugin, and the navigation labels of the loaded plugins are added.
Each must have a non-empty translation in the merged catalog of a language.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from shared.console import ConsolePlugin, load_console_plugins
from shared.i18n import catalog_paths

__all__ = ["Message", "extract_messages", "find_untranslated", "message_roots"]

_METHOD_MAP = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
_OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
_KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "translate": None}


@dataclass(frozen=True)
class Message:
    """A msgid and where it was found."""

    msgid: str
    location: str


def message_roots(plugins: Sequence[ConsolePlugin]) -> list[Path]:
    """Return the package folders to extract from: the console's and each plugin's."""
    roots = [Path(__file__).parent]
    for plugin in plugins:
        module = sys.modules.get(type(plugin).__module__)
        folder = plugin.templates.parent if plugin.templates is not None else None
        if folder is None and module is not None and module.__file__:
            folder = Path(module.__file__).parent
        if folder is not None and folder not in roots:
            roots.append(folder)
    return roots


def extract_messages(roots: Iterable[Path], *, navigation: Iterable[str] = ()) -> list[Message]:
    """Extract every msgid from the templates and Python files under `roots`."""
    found: list[Message] = []
    for root in roots:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            str(root),
            method_map=_METHOD_MAP,
            options_map=_OPTIONS,
            keywords=_KEYWORDS,
        ):
            msgids = message if isinstance(message, tuple) else (message,)
            for msgid in msgids:
                if msgid:
                    found.append(Message(msgid, f"{root.name}/{filename}:{lineno}"))
    found += [Message(label, "navigation") for label in navigation]
    return found


def _translated(language: str) -> set[str]:
    done: set[str] = set()
    for path in catalog_paths(language):
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        for entry in catalog:
            strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            if entry.id and not entry.fuzzy and all(strings):
                done.add(entry.id if isinstance(entry.id, str) else entry.id[0])
    return done


def find_untranslated(
    language: str = "zh_CN", plugins: Sequence[ConsolePlugin] | None = None
) -> list[Message]:
    """Return the messages of the console and its plugins that `language` does not translate."""
    plugins = load_console_plugins() if plugins is None else plugins
    messages = extract_messages(
        message_roots(plugins),
        navigation=[link.label for plugin in plugins for link in plugin.nav],
    )
    done = _translated(language)
    return [message for message in messages if message.msgid not in done]
