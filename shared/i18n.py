"""Translations for everything people read: console pages, alert e-mails, CLI help.

Catalogs are gettext ``.po`` files, one ``messages`` domain per package:
``<package>/locale/<language>/LC_MESSAGES/messages.po``. The core's own
catalog lives in ``shared/locale``; each service adds its package under the
``diptych.locales`` entry-point group, and `get_translations` merges them all.
The ``.po`` files are compiled in memory on first use, so no ``.mo`` file is
committed or built.

Example::

    >>> from shared.i18n import translate
    >>> translate("Sign in", "zh_CN")
    '登录'
"""

from __future__ import annotations

import functools
import gettext
import io
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "N_",
    "catalog_paths",
    "get_translations",
    "locale_dirs",
    "negotiate_language",
    "normalize_language",
    "translate",
]

ENTRY_POINT_GROUP = "diptych.locales"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"
# Language codes as users pick them, mapped to the catalog folder that serves them.
LANGUAGES: dict[str, str] = {"en": "English", "zh_CN": "简体中文"}


def N_(message: str) -> str:
    """Mark `message` for the catalogs without translating it (gettext_noop).

    Text translated later by value, such as a `NavLink` label or a status
    shown through ``_(status)`` in a template, is marked where it is defined so
    that message extraction finds it.
    """
    return message


def locale_dirs() -> list[Path]:
    """Return the ``locale`` folders of the core and of every registered package."""
    folders = [Path(__file__).parent / "locale"]
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        module = import_module(entry.value)
        folder = Path(module.__file__ or "").parent / "locale"
        if folder.is_dir() and folder not in folders:
            folders.append(folder)
    return folders


def catalog_paths(language: str) -> list[Path]:
    """Return the ``.po`` files that hold `language`, core first."""
    return [
        path
        for folder in locale_dirs()
        if (path := folder / language / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    ]


def normalize_language(value: str | None) -> str:
    """Map a user's or browser's language tag to one of `LANGUAGES`.

    ``zh``, ``zh-CN``, ``zh_Hans`` and ``zh-SG`` give ``zh_CN``; anything unknown,
    empty or malformed gives the default, English.
    """
    if not value:
        return DEFAULT_LANGUAGE
    tag = value.strip().replace("-", "_")
    if tag in LANGUAGES:
        return tag
    try:
        locale = Locale.parse(tag)
    except (ValueError, UnknownLocaleError):
        return DEFAULT_LANGUAGE
    if (
        locale.language == "zh"
        and locale.script != "Hant"
        and locale.territory
        not in {
            "TW",
            "HK",
            "MO",
        }
    ):
        return "zh_CN"
    return DEFAULT_LANGUAGE


def negotiate_language(accept_language: str | None, *, default: str = DEFAULT_LANGUAGE) -> str:
    """Pick the language for an ``Accept-Language`` header, honouring its q-values.

    Args:
        accept_language: The header's value, or None when the request has none.
        default: The language returned when the header is missing, is ``*`` or names
            no language of `LANGUAGES`, for example the signed-in user's choice.
    """
    if not accept_language:
        return default
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag))
    for _quality, _position, tag in sorted(weighted):
        if tag == "*":
            return default
        language = normalize_language(tag)
        if language != DEFAULT_LANGUAGE or tag.lower().startswith("en"):
            return language
    return default


@functools.cache
def get_translations(language: str) -> gettext.NullTranslations:
    """Return the merged catalog for `language` (English gives the identity)."""
    language = normalize_language(language)
    merged: gettext.NullTranslations = gettext.NullTranslations()
    for path in catalog_paths(language):
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=DOMAIN)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        translations = gettext.GNUTranslations(buffer)
        if isinstance(merged, gettext.GNUTranslations):
            merged.add_fallback(translations)
        else:
            merged = translations
    return merged


def translate(message: str, language: str | None, **values: object) -> str:
    """Translate `message` into `language` and fill its ``%(name)s`` placeholders."""
    text = get_translations(normalize_language(language)).gettext(message)
    return text % values if values else text
