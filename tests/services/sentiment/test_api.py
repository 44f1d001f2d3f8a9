"""REST API and dashboard pages, in an app built like the console mounts them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader

from services.sentiment.actions import create_silence
from services.sentiment.alerting import evaluate_rules
from services.sentiment.models import SentimentAlert
from services.sentiment.rules import RuleSet
from services.sentiment.schemas import SilenceMatcher
from services.sentiment.store import store_scored_items
from services.sentiment.web import build_plugin
from shared.api import install_error_handlers
from shared.console import ConsoleUser
from shared.i18n import get_translations
from shared.storage import session_scope
from tests.services.sentiment.conftest import make_record

BASE = (
    "<html><head><title>{% block title %}{% endblock %}</title>{% block head %}{% endblock %}"
    "</head><body>{% block content %}{% endblock %}{% block scripts %}{% endblock %}</body></html>"
)
T0 = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)


def _build_app() -> FastAPI:
    plugin = build_plugin()
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(plugin.api_router, prefix="/api/v1")
    app.include_router(plugin.page_router)
    assert plugin.templates is not None
    environment = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(str(plugin.templates)), DictLoader({"base.html": BASE})]
        ),
        extensions=["jinja2.ext.i18n"],
        autoescape=True,
    )
    templates = Jinja2Templates(env=environment)
    app.state.templates = templates

    @app.middleware("http")
    async def sign_in(request: Request, call_next):  # type: ignore[no-untyped-def]
        role = request.headers.get("X-Test-Role", "analyst")
        language = request.headers.get("X-Test-Language", "en")
        if role != "none":
            request.state.user = ConsoleUser(
                id=1,
                username="ana",
                role=role,
                language=language,
                timezone=request.headers.get("X-Test-Timezone", "UTC"),
            )
        environment.install_gettext_translations(get_translations(language), newstyle=True)  # type: ignore[attr-defined]
        response = await call_next(request)
        return response

    return app


@pytest.fixture
def client(sentiment_env: object) -> Iterator[TestClient]:
    with TestClient(_build_app()) as test_client:
        yield test_client


def _item(item_id: str, text: str = "Pfizer shares fall after trial failure") -> dict[str, object]:
    return {"id": item_id, "published_at": "2024-05-06T10:00:00Z", "text": text}


def test_post_item_scores_and_stores(client: TestClient) -> None:
    """Without Redis an item is scored and stored during the request; a repeat is a duplicate."""
    first = client.post("/api/v1/sentiment/items", json=_item("x1"))
    again = client.post("/api/v1/sentiment/items", json=_item("x1"))
    assert first.status_code == 202
    assert first.json() == {"accepted": 1, "duplicates": 0, "queued": False, "ids": ["x1"]}
    assert again.json()["duplicates"] == 1
    items = client.get("/api/v1/sentiment/entities/PFE/items").json()
    assert [item["external_id"] for item in items] == ["x1"]
    assert items[0]["mentions"][0]["surface"] == "Pfizer"
    assert items[0]["label"] in ("positive", "neutral", "negative")


def test_batch_reports_bad_items_and_keeps_the_rest(client: TestClient) -> None:
    """One invalid item in a batch is reported by index; the others are taken in."""
    response = client.post(
        "/api/v1/sentiment/items/batch",
        json={
            "items": [
                _item("b1"),
                {"id": "b2", "published_at": "2024-05-06T10:00:00Z"},
                _item("b3", "含有\u0000的文本"),
                _item("b4", "微软发布财报 Microsoft beats estimates"),
                _item("b1"),
            ]
        },
    )
    body = response.json()
    assert response.status_code == 202
    assert body["ids"] == ["b1", "b4"]
    assert body["duplicates"] == 1
    assert [(e["index"], e["id"]) for e in body["errors"]] == [(1, "b2"), (2, "b3")]
    assert "text" in body["errors"][0]["error"]
    assert "NUL" in body["errors"][1]["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"id": "e", "published_at": "2024-05-06T10:00:00Z", "text": "   "}', "text"),
        ('{"id": "e", "published_at": "yesterday", "text": "ok"}', "published_at"),
        (
            '{"id": "e", "published_at": "2024-05-06T10:00:00Z", "text": "%s"}' % ("x" * 20_001),
            "text",
        ),
        ('{"id": "", "published_at": "2024-05-06T10:00:00Z", "text": "ok"}', "id"),
        ('{"id": "e", "published_at": "2024-05-06T10:00:00Z", "text": "\\ud800"}', "text"),
        ('{"id": "e", "published_at": ', "json"),
    ],
)
def test_invalid_item_is_422(client: TestClient, body: str, fragment: str) -> None:
    """Bad input gets 422 naming the field, never 500; a lone surrogate included."""
    response = client.post(
        "/api/v1/sentiment/items",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert fragment in str(response.json()["detail"])


def test_item_queued_on_stream_with_redis(
    client: TestClient, celery_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis configured, items go onto the stream for the workers."""
    import redis

    from shared.settings import get_settings, reset_settings

    monkeypatch.setenv("DIPTYCH_REDIS_URL", celery_redis_url)
    reset_settings()
    response = client.post("/api/v1/sentiment/items", json=_item("q1"))
    assert response.json()["queued"] is True
    with redis.Redis.from_url(celery_redis_url) as connection:
        assert connection.xlen(get_settings().sentiment.stream) == 1


def test_roles_are_enforced(client: TestClient) -> None:
    """Agents get 403 and anonymous requests 401."""
    assert (
        client.get("/api/v1/sentiment/alerts", headers={"X-Test-Role": "agent"}).status_code == 403
    )
    assert (
        client.get("/api/v1/sentiment/alerts", headers={"X-Test-Role": "none"}).status_code == 401
    )
    assert client.get("/sentiment", headers={"X-Test-Role": "agent"}).status_code == 403


RULES = RuleSet.model_validate(
    {
        "rules": [
            {
                "name": "negative-surge",
                "kind": "negative_share_surge",
                "bucket": "1h",
                "min_volume": 3,
                "threshold_sd": 2.0,
                "baseline_buckets": 24,
                "min_baseline_buckets": 5,
                "min_spread": 0.05,
                "severity": "critical",
            }
        ]
    }
)


def _firing_alert() -> int:
    records = []
    for hour in range(12):
        labels = ["negative"] * 5 if hour == 10 else ["positive"] * 4
        for index, label in enumerate(labels):
            at = T0 + dt.timedelta(hours=hour, minutes=5)
            records.append(make_record(f"AMZN-{hour}-{index}", at, entity="AMZN", label=label))
    with session_scope() as session:
        store_scored_items(session, records)
        evaluate_rules(session, RULES, until=T0 + dt.timedelta(hours=11))
    with session_scope() as session:
        alert = session.query(SentimentAlert).one()
        assert alert.state == "firing"
        return alert.id


def test_entities_buckets_chart_and_alerts(client: TestClient) -> None:
    """Ranking, buckets, the PNG chart and the alert list read the stored data."""
    alert_id = _firing_alert()
    ranking = client.get("/api/v1/sentiment/entities").json()
    assert ranking[0]["entity"] == "AMZN"
    assert ranking[0]["name"] == "Amazon"
    assert ranking[0]["firing"] == 1
    buckets = client.get("/api/v1/sentiment/entities/amzn/buckets?granularity=1h").json()
    assert sum(bucket["volume"] for bucket in buckets) == 49
    chart = client.get("/api/v1/sentiment/entities/AMZN/chart.png")
    assert chart.headers["content-type"] == "image/png"
    assert chart.content.startswith(b"\x89PNG")
    alerts = client.get("/api/v1/sentiment/alerts?state=firing").json()
    assert [alert["id"] for alert in alerts] == [alert_id]
    assert client.get("/api/v1/sentiment/alerts?state=bogus").status_code == 422
    assert client.get("/api/v1/sentiment/entities/AMZN/buckets?granularity=2h").status_code == 422


def test_acknowledge_and_silence_api(client: TestClient) -> None:
    """Acknowledging records who; silences are created, listed and expired; bad ones get 422."""
    alert_id = _firing_alert()
    acked = client.post(f"/api/v1/sentiment/alerts/{alert_id}/ack").json()
    assert acked["acknowledged_by"] == "ana"
    assert client.post("/api/v1/sentiment/alerts/999/ack").status_code == 404
    created = client.post(
        "/api/v1/sentiment/silences",
        json={"matchers": [{"name": "entity", "value": "AMZN"}], "duration_s": 3600},
    )
    assert created.status_code == 201
    silence_id = created.json()["id"]
    assert [s["id"] for s in client.get("/api/v1/sentiment/silences").json()] == [silence_id]
    bad = client.post(
        "/api/v1/sentiment/silences",
        json={"matchers": [{"name": "entity", "value": "(", "is_regex": True}], "duration_s": 60},
    )
    assert bad.status_code == 422
    assert client.delete(f"/api/v1/sentiment/silences/{silence_id}").status_code == 200
    assert client.get("/api/v1/sentiment/silences").json() == []


def test_pages_render_in_chinese_and_user_timezone(client: TestClient) -> None:
    """The pages speak the user's language and show times in the user's zone."""
    _firing_alert()
    headers = {"X-Test-Language": "zh_CN", "X-Test-Timezone": "Asia/Shanghai"}
    ranking = client.get("/sentiment", headers=headers)
    entity = client.get("/sentiment/entities/AMZN", headers=headers)
    alerts = client.get("/sentiment/alerts", headers=headers)
    assert ranking.status_code == 200
    assert "按激增程度排序的实体" in ranking.text
    assert 'href="/sentiment/entities/AMZN"' in ranking.text
    assert "/api/v1/sentiment/entities/AMZN/chart.png" in entity.text
    assert "2024-05-06 18:05 CST" in entity.text
    assert 'name="csrf_token"' in alerts.text
    assert "确认" in alerts.text


def test_page_forms_acknowledge_and_silence(client: TestClient) -> None:
    """The alert page's forms acknowledge, silence and expire, then redirect back."""
    alert_id = _firing_alert()
    acked = client.post(f"/sentiment/alerts/{alert_id}/ack", follow_redirects=False)
    silenced = client.post(
        "/sentiment/silences",
        data={"matchers": "entity=AMZN,rule=~negative.*", "duration": "90m", "comment": "known"},
        follow_redirects=False,
    )
    invalid = client.post("/sentiment/silences", data={"matchers": "entity", "duration": "2h"})
    assert acked.status_code == 303
    assert silenced.status_code == 303
    assert invalid.status_code == 422
    page = client.get("/sentiment/alerts").text
    assert "entity=AMZN, rule=~negative.*" in page
    assert "ana" in page


def test_empty_dashboard(client: TestClient) -> None:
    """Before any item the pages and the ranking are empty, not errors."""
    assert client.get("/api/v1/sentiment/entities").json() == []
    assert "No scored items yet." in client.get("/sentiment").text
    assert client.get("/api/v1/sentiment/entities/NONE/chart.png").status_code == 200


def test_silence_helper_rejects_empty() -> None:
    """A silence without matchers is refused with an example."""
    with pytest.raises(ValueError, match="entity=AMZN"):
        create_silence([], duration_s=60, by="x")
    assert SilenceMatcher(name="entity", value="X").is_regex is False


def test_template_folder_exists() -> None:
    """The plugin's template folder contains the three pages."""
    folder = build_plugin().templates
    assert folder is not None
    assert sorted(path.name for path in Path(folder, "sentiment").iterdir()) == [
        "alerts.html",
        "entity.html",
        "ranking.html",
    ]


def test_post_item_without_model_is_409(sentiment_db: str) -> None:
    """Without a production sentiment model the error names the command that trains one."""
    with TestClient(_build_app()) as test_client:
        response = test_client.post("/api/v1/sentiment/items", json=_item("n1"))
    assert response.status_code == 409
    assert "diptych train classifier" in response.json()["detail"]


@pytest.mark.parametrize(
    "request_line",
    [
        ("post", "/api/v1/sentiment/alerts/18446744073709551615/ack"),
        ("delete", "/api/v1/sentiment/silences/18446744073709551615"),
        ("delete", "/api/v1/sentiment/silences/0"),
    ],
)
def test_out_of_range_ids_are_422(client: TestClient, request_line: tuple[str, str]) -> None:
    method, path = request_line
    headers = {"X-CSRF-Token": "unused-outside-the-console"}

    assert client.request(method, path, headers=headers).status_code == 422


@pytest.mark.parametrize("entity", ["龘8", "\U000ba9e2", "O5\x99 ", "TSLA%0A"])
def test_chart_of_any_entity_name_renders(client: TestClient, entity: str) -> None:
    """Names with glyphs no font has, or control characters, still give a PNG."""
    response = client.get(f"/api/v1/sentiment/entities/{entity}/chart.png")

    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")


def test_chart_title_with_dollar_sign(client: TestClient) -> None:
    """An entity written as a cashtag still renders its chart."""
    assert client.get("/api/v1/sentiment/entities/$AMZN/chart.png").status_code == 200
