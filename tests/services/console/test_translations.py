"""Every visible string of the console and its plugins has a Chinese translation."""

from __future__ import annotations

from pathlib import Path

from services.console.app import build_console_plugin
from services.console.translations import extract_messages, find_untranslated
from shared.console import ConsolePlugin, NavLink, load_console_plugins


def test_every_message_has_a_chinese_translation() -> None:
    plugins = [build_console_plugin(), *load_console_plugins()]
    missing = find_untranslated("zh_CN", plugins)
    assert missing == [], "\n".join(f"{m.location}: {m.msgid!r}" for m in missing)


def test_check_finds_a_plugin_template_without_translation(tmp_path: Path) -> None:
    """A plugin's new template string, unknown to the catalogs, is reported with its file."""
    templates = tmp_path / "templates" / "extra"
    templates.mkdir(parents=True)
    (templates / "page.html").write_text(
        '{% extends "base.html" %}{% block content %}'
        "{{ _('Reticulate the splines') }}{% trans %}Count the frogs{% endtrans %}"
        "{% endblock %}",
        encoding="utf-8",
    )
    plugin = ConsolePlugin(
        name="extra",
        nav=(NavLink("/extra", "Untranslated navigation", ("agent",)),),
        templates=tmp_path / "templates",
    )
    missing = {m.msgid: m.location for m in find_untranslated("zh_CN", [plugin])}
    assert "Reticulate the splines" in missing
    assert "Count the frogs" in missing
    assert missing["Untranslated navigation"] == "navigation"
    assert "templates/extra/page.html" in missing["Reticulate the splines"]


def test_extraction_reads_python_markers(tmp_path: Path) -> None:
    (tmp_path / "module.py").write_text(
        "from shared.i18n import N_\nLABEL = N_('Marked label')\nx = _('Called label')\n",
        encoding="utf-8",
    )
    found = {m.msgid for m in extract_messages([tmp_path])}
    assert found == {"Marked label", "Called label"}
