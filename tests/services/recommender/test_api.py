"""The recommender API and console page on a fitted synthetic catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader

from services.recommender import store
from services.recommender.batch import run_batch
from services.recommender.serving import fit_from_database
from services.recommender.web import plugin
from shared.api import install_error_handlers
from shared.console import ConsoleUser
from shared.i18n import get_translations

BASE_TEMPLATE = (
    "<html><head><title>{% block title %}{% endblock %}</title>{% block head %}{% endblock %}"
    "</head><body>{% block content %}{% endblock %}{% block scripts %}{% endblock %}</body></html>"
)


def _build_app(role: str = "analyst", language: str = "en") -> FastAPI:
    shares = plugin()
    app = FastAPI()
    install_error_handlers(app)

    @app.middleware("http")
    async def sign_in(request: Request, call_next):  # type: ignore[no-untyped-def]
        request.state.user = ConsoleUser(id=1, username="ana", role=role, language=language)
        return await call_next(request)

    environment = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(str(shares.templates)), DictLoader({"base.html": BASE_TEMPLATE})]
        ),
        extensions=["jinja2.ext.i18n"],
        autoescape=True,
    )
    environment.install_gettext_translations(get_translations(language), newstyle=True)  # type: ignore[attr-defined]
    app.state.templates = Jinja2Templates(env=environment)
    app.include_router(shares.api_router, prefix="/api/v1")
    app.include_router(shares.page_router)
    return app


@pytest.fixture
def client(stored_catalogue: str) -> Iterator[TestClient]:
    """A client of an app with the recommender fitted on the synthetic catalogue."""
    fit_from_database()
    with TestClient(_build_app()) as test_client:
        yield test_client


def _seen(user_id: int) -> set[int]:
    log = store.load_user_interactions([user_id], like_threshold=4.0, dislike_threshold=2.0)
    return set(log.items.tolist())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_get_recommendations_computed_unseen(client: TestClient) -> None:
    """Without a batch run the list is computed now: N distinct, unseen items with reasons."""
    response = client.get("/api/v1/recommendations/3", params={"top_n": 5})
    assert response.status_code == 200
    body = response.json()
    ids = [item["item_id"] for item in body["items"]]
    assert body["run_id"] is None
    assert len(ids) == 5
    assert len(set(ids)) == 5
    assert not set(ids) & _seen(3)
    assert all(item["reason_text"] for item in body["items"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_get_recommendations_reads_batch_run(client: TestClient) -> None:
    """After a batch run the stored list is served under its run id."""
    summary = run_batch(top_n=4, run_id="nightly", chunk_size=7)
    response = client.get("/api/v1/recommendations/5")
    assert summary.is_finished
    assert response.json()["run_id"] == "nightly"
    assert [item["rank"] for item in response.json()["items"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_get_recommendations_cold_start_user(client: TestClient) -> None:
    """A user with no history gets a popularity list, not an error."""
    response = client.get("/api/v1/recommendations/99999", params={"top_n": 6})
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 6
    assert {item["reason"] for item in items} == {"popular"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_new_item_recommendable_without_rebuild(client: TestClient) -> None:
    """An item added through the API is found for a matching query and as a neighbour at once."""
    # Given a fitted model and a new item posted through the API
    text = "zygote quokka hovercraft"
    created = client.post("/api/v1/items", json={"id": 500, "title": text, "tags": ["新片"]})
    assert created.status_code == 201

    # When a cold-start user searches with the item's text
    response = client.get(
        "/api/v1/recommendations/424242", params={"query": "Zygote quokka hovercraft. tags: 新片"}
    )

    # Then the new item is listed, and the index returns it beside an identical twin
    listed = {item["item_id"]: item["reason"] for item in response.json()["items"]}
    assert listed.get(500) == "query"
    twin = client.post("/api/v1/items", json={"id": 501, "title": text, "tags": ["新片"]})
    assert twin.status_code == 201
    similar = client.get("/api/v1/items/500/similar", params={"count": 3}).json()
    assert similar[0]["item_id"] == 501
    assert similar[0]["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_new_item_reaches_user_with_history(client: TestClient) -> None:
    """A new item whose text equals an item the user liked enters the user's candidates."""
    log = store.load_user_interactions([2], like_threshold=4.0, dislike_threshold=2.0)
    liked = int(log.items[log.preferences > 0][-1])
    record = store.get_item_records([liked])[0]
    client.post(
        "/api/v1/items",
        json={
            "id": 600,
            "title": record.title,
            "fields": record.fields,
            "tags": ["经典", f"tag{liked % 7}"],
        },
    )
    response = client.get("/api/v1/recommendations/2", params={"top_n": 20, "fresh": True})
    assert 600 in [item["item_id"] for item in response.json()["items"]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "payload",
    [
        '{"id": -1, "title": "x"}',
        '{"id": 1, "title": "   "}',
        '{"title": "x"}',
        '{"id": 1, "title": "\\ud800 bad"}',
        '{"id": 1, "title": "ok", "tags": ["\\udfff"]}',
        '{"id": 1, "title": "ok", "fields": {"genres": "\\ud800"}}',
        '{"id": 1, "title": "ok", "created_at": 1e20}',
        '{"id": 1, "title": "ok", "created_at": -1e20}',
    ],
)
def test_create_item_rejects_bad_input(client: TestClient, payload: str) -> None:
    """Bad items, lone surrogates included, get status 422."""
    response = client.post(
        "/api/v1/items", content=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_similar_unknown_item_is_404(client: TestClient) -> None:
    """An item that is not in the model gets 404 naming it."""
    response = client.get("/api/v1/items/123456/similar")
    assert response.status_code == 404
    assert "123456" in response.json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_endpoints_before_fit_answer_409(stored_catalogue: str) -> None:
    """Before anything is fitted the API names the command to run."""
    with TestClient(_build_app()) as test_client:
        response = test_client.get("/api/v1/recommendations/1")
    assert response.status_code == 409
    assert "diptych recommend fit" in response.json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_page_shows_history_and_list(client: TestClient) -> None:
    """The page lists the user's history beside the recommendations."""
    response = client.get("/recommender", params={"user_id": 3})
    assert response.status_code == 200
    assert "History" in response.text
    assert response.text.count("<li>") == 10


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_page_in_chinese(stored_catalogue: str) -> None:
    """A Chinese-speaking analyst sees the page in Chinese."""
    fit_from_database()
    with TestClient(_build_app(language="zh_CN")) as test_client:
        response = test_client.get("/recommender", params={"user_id": 3})
    assert "历史记录" in response.text
    assert "推荐列表" in response.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_page_and_api_reject_agent_role(stored_catalogue: str) -> None:
    """Support agents may not open the recommender."""
    with TestClient(_build_app(role="agent")) as test_client:
        assert test_client.get("/recommender").status_code == 403
        assert test_client.get("/api/v1/recommendations/1").status_code == 403


def test_plugin_registered() -> None:
    """The console finds the plugin through its entry point."""
    from shared.console import load_console_plugins

    names = [p.name for p in load_console_plugins()]
    assert "recommender" in names
    assert Path(plugin().templates or "").is_dir()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_changed_encoder_answers_409_with_rebuild(
    stored_catalogue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the encoder setting changes, the stored index is rejected with the rebuild command."""
    from services.recommender.serving import clear_model_cache
    from shared.retrieval import clear_embedder_cache
    from shared.settings import reset_settings
    from tests.services.recommender.conftest import build_character_bert

    fit_from_database()
    monkeypatch.setenv(
        "DIPTYCH_MODELS__ENCODER", str(build_character_bert(tmp_path / "other-bert"))
    )
    reset_settings()
    clear_embedder_cache()
    clear_model_cache()
    with TestClient(_build_app()) as test_client:
        response = test_client.get("/api/v1/recommendations/1")
    assert response.status_code == 409
    assert "diptych recommend fit" in response.json()["detail"]
    assert "other-bert" in response.json()["detail"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_nightly_task_writes_and_finishes_the_day_run(client: TestClient) -> None:
    """The beat task queues the day's run (in-process here); the last chunk finishes it."""
    from services.recommender.tasks import start_nightly_batch

    run_id = start_nightly_batch.apply().get()
    again = start_nightly_batch.apply().get()
    response = client.get("/api/v1/recommendations/5")

    assert run_id.startswith("nightly-")
    assert again == run_id
    assert store.count_finished_users(run_id) == len(store.list_user_ids())
    assert response.json()["run_id"] == run_id
