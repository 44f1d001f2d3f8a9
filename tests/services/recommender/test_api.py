"""The recommender API and console page on a fitted synthetic catalogue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader

from services.recommender import store
from services.recommender.batch import run_batch
from services.recommender.catalogue import InteractionRecord, ItemRecord
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
        '{"id": 0, "title": "x"}',
        '{"id": 2147483648, "title": "x"}',
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


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/api/v1/recommendations/-3", "user_id", "-3"),
        ("/api/v1/recommendations/0", "user_id", "0"),
        ("/api/v1/recommendations/2147483648", "user_id", "2147483648"),
        ("/api/v1/recommendations/99999999999999999999", "user_id", "99999999999999999999"),
        ("/api/v1/items/0/similar", "item_id", "0"),
        ("/api/v1/items/-1/similar", "item_id", "-1"),
        ("/api/v1/items/2147483648/similar", "item_id", "2147483648"),
    ],
)
def test_path_id_out_of_range_is_422(client: TestClient, path: str, name: str, value: str) -> None:
    """Ids outside 1 to 2**31 - 1 are rejected with a message naming the id and the range."""
    response = client.get(path)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["path", name]
    assert f"`{name}`" in error["msg"]
    assert "2147483647" in error["msg"]
    assert value in error["msg"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_path_id_limits_are_accepted(client: TestClient) -> None:
    """The largest id is a valid (unknown, so cold-start) user, not a validation error."""
    response = client.get("/api/v1/recommendations/2147483647", params={"top_n": 3})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_page_rejects_user_id_zero(client: TestClient) -> None:
    """The console page validates the user id like the API."""
    assert client.get("/recommender", params={"user_id": 0}).status_code == 422
    assert client.get("/recommender", params={"user_id": 2**31}).status_code == 422


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= character <= "\u9fff" for character in text)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("user_id", [3, 99999])
def test_reason_text_follows_accept_language(client: TestClient, user_id: int) -> None:
    """Reasons are rendered in the language of Accept-Language, for known and cold-start users."""
    chinese = client.get(
        f"/api/v1/recommendations/{user_id}",
        params={"top_n": 5},
        headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"},
    )
    english = client.get(
        f"/api/v1/recommendations/{user_id}",
        params={"top_n": 5},
        headers={"Accept-Language": "en-GB"},
    )

    assert chinese.headers["content-language"] == "zh-CN"
    assert english.headers["content-language"] == "en"
    assert "Accept-Language" in chinese.headers["vary"]
    for item in chinese.json()["items"]:
        assert _has_chinese(item["reason_text"]), item
    for item in english.json()["items"]:
        assert not _has_chinese(item["reason_text"].replace("经典", "")), item


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_reason_text_chinese_in_stored_run(stored_catalogue: str) -> None:
    """A list read from a batch run is rendered in the reader's language, not the writer's."""
    fit_from_database()
    run_batch(top_n=4, run_id="nightly", chunk_size=10)
    with TestClient(_build_app(language="zh_CN")) as test_client:
        response = test_client.get("/api/v1/recommendations/5")

    body = response.json()
    assert body["run_id"] == "nightly"
    assert len(body["items"]) == 4
    for item in body["items"]:
        assert _has_chinese(item["reason_text"]), item


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("header", "chinese_expected"),
    [(None, True), ("fr-FR", True), ("*", True), ("en-US", False), ("zh-CN", True)],
)
def test_reason_language_header_over_user_choice(
    stored_catalogue: str, header: str | None, chinese_expected: bool
) -> None:
    """A zh_CN user gets Chinese unless the request's Accept-Language requests English."""
    fit_from_database()
    headers = {} if header is None else {"Accept-Language": header}
    with TestClient(_build_app(language="zh_CN")) as test_client:
        response = test_client.get(
            "/api/v1/recommendations/3", params={"top_n": 3}, headers=headers
        )

    texts = [item["reason_text"] for item in response.json()["items"]]
    assert len(texts) == 3
    assert all(_has_chinese(text) == chinese_expected for text in texts), texts


def test_reason_templates_are_extracted_for_translation() -> None:
    """Every reason sentence is marked for extraction, so the catalog check covers it."""
    from services.console.translations import extract_messages
    from services.recommender import reasons

    found = {message.msgid for message in extract_messages([Path(reasons.__file__).parent])}
    for template in reasons.REASON_TEMPLATES:
        assert template in found
    assert get_translations("zh_CN").gettext("Popular with everyone") == "大众热门"


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_create_item_repeat_updates_and_reembeds(client: TestClient) -> None:
    """A repeated id answers 200 `updated`, and the item's new text is what the index finds."""
    # Given an item posted once
    first = client.post("/api/v1/items", json={"id": 700, "title": "quiet harbour"})

    # When it is posted again with a new title, a field and a tag
    second = client.post(
        "/api/v1/items",
        json={
            "id": 700,
            "title": "stormy lighthouse",
            "fields": {"genres": "drama"},
            "tags": ["海"],
        },
    )
    third = client.post("/api/v1/items", json={"id": 700, "title": "stormy lighthouse"})

    # Then the first is created, the second updates the stored record, the third changes nothing
    assert first.status_code == 201
    assert first.json()["change"] == "created"
    assert second.status_code == 200
    assert second.json()["change"] == "updated"
    assert second.json()["title"] == "stormy lighthouse"
    assert second.json()["fields"] == {"genres": "drama"}
    assert second.json()["tags"] == ["海"]
    assert third.status_code == 200
    assert third.json()["change"] == "unchanged"
    record = store.get_item_records([700])[0]
    assert record.title == "stormy lighthouse"

    # And a twin with the new text sits at cosine 1.0 from it, so the vector was recomputed
    twin = client.post(
        "/api/v1/items",
        json={
            "id": 701,
            "title": "stormy lighthouse",
            "fields": {"genres": "drama"},
            "tags": ["海"],
        },
    )
    similar = client.get("/api/v1/items/700/similar", params={"count": 2}).json()
    assert twin.status_code == 201
    assert similar[0]["item_id"] == 701
    assert similar[0]["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_create_item_unchanged_keeps_saved_model(client: TestClient) -> None:
    """Posting an item again with the same text does not embed or save the model again."""
    from services.recommender.serving import model_folder

    client.post("/api/v1/items", json={"id": 702, "title": "amber field"})
    saved = (model_folder() / "model.json").stat().st_mtime_ns
    again = client.post("/api/v1/items", json={"id": 702, "title": "amber field"})
    assert again.json()["change"] == "unchanged"
    assert (model_folder() / "model.json").stat().st_mtime_ns == saved


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_create_item_by_external_id(client: TestClient) -> None:
    """A string id gets a free key; posting it again updates that item; a wrong key is 409."""
    created = client.post(
        "/api/v1/items", json={"external_id": "sku-00123", "title": "流浪地球", "tags": ["科幻"]}
    )
    key = created.json()["id"]
    updated = client.post("/api/v1/items", json={"external_id": "sku-00123", "title": "流浪地球 2"})
    both = client.post(
        "/api/v1/items", json={"id": key, "external_id": "sku-00123", "title": "流浪地球 2"}
    )
    conflict = client.post(
        "/api/v1/items", json={"id": 5, "external_id": "sku-00123", "title": "x"}
    )
    by_key = client.post("/api/v1/items", json={"id": key, "title": "流浪地球 3"})
    numeric = client.post("/api/v1/items", json={"external_id": "703", "title": "numeric"})

    assert created.status_code == 201
    assert created.json()["external_id"] == "sku-00123"
    assert key == 41
    assert updated.status_code == 200
    assert updated.json()["id"] == key
    assert updated.json()["change"] == "updated"
    assert updated.json()["tags"] == ["科幻"]
    assert both.json()["change"] == "unchanged"
    assert conflict.status_code == 409
    assert "sku-00123" in conflict.json()["detail"]
    assert by_key.status_code == 409
    assert "external_id" in by_key.json()["detail"]
    assert numeric.status_code == 201
    assert numeric.json()["id"] == 703
    assert numeric.json()["external_id"] is None
    similar = client.get(f"/api/v1/items/{key}/similar", params={"count": 3}).json()
    assert len(similar) == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "payload",
    [
        '{"title": "x"}',
        '{"external_id": "", "title": "x"}',
        '{"external_id": "   ", "title": "x"}',
        '{"external_id": "-4", "title": "x"}',
        '{"external_id": "1.5", "title": "x"}',
        '{"external_id": "7", "id": 8, "title": "x"}',
        '{"external_id": "\\ud800", "title": "x"}',
    ],
)
def test_create_item_rejects_bad_ids(client: TestClient, payload: str) -> None:
    """A missing id, a blank or numeric-looking bad string id, or two different keys get 422."""
    response = client.post(
        "/api/v1/items", content=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_recommendations_by_external_user_id(stored_catalogue: str) -> None:
    """A user imported by string id is served by that id; an unknown string id gets popularity."""
    store.import_items(
        [ItemRecord(None, "Title sku space opera", {"genres": "space opera"}, external_id="sku-1")]
    )
    store.import_interactions(
        [
            InteractionRecord(None, item, "like", None, 1_700_000_000.0 + item, "u-alice")
            for item in (4, 8, 12)
        ]
    )
    fit_from_database()
    with TestClient(_build_app()) as test_client:
        known = test_client.get(
            "/api/v1/recommendations", params={"external_user_id": "u-alice", "top_n": 41}
        )
        unknown = test_client.get(
            "/api/v1/recommendations", params={"external_user_id": "u-zed", "top_n": 3}
        )
        by_key = test_client.get(f"/api/v1/recommendations/{known.json()['user_id']}")

    body = known.json()
    assert known.status_code == 200
    assert body["user_id"] == store.find_user_key("u-alice")
    assert body["user_external_id"] == "u-alice"
    listed = {item["item_id"]: item["external_id"] for item in body["items"]}
    assert listed[41] == "sku-1"
    assert not {4, 8, 12} & set(listed)
    assert unknown.json()["user_id"] is None
    assert unknown.json()["user_external_id"] == "u-zed"
    assert {item["reason"] for item in unknown.json()["items"]} == {"popular"}
    assert by_key.json()["user_external_id"] == "u-alice"


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_new_item_reaches_fresh_list_of_close_user(
    stored_catalogue: str, word_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new item near a user's liked texts enters their fresh list although nobody rated it.

    Weights like those learned on MovieLens reward popularity and co-occurrence,
    which a new item cannot have yet; it must compete on its text instead.
    """
    from services.recommender.ranking import Combination
    from services.recommender.serving import (
        clear_model_cache,
        get_serving_model,
        model_folder,
        save_model,
    )
    from shared.retrieval import clear_embedder_cache
    from shared.settings import reset_settings

    # Given the catalogue fitted with a bag-of-words encoder and MovieLens-like weights
    monkeypatch.setenv("DIPTYCH_MODELS__ENCODER", str(word_encoder))
    reset_settings()
    clear_embedder_cache()
    clear_model_cache()
    fit_from_database()
    model = get_serving_model()
    model.combination = Combination(
        weights=np.array([0.98, -0.80, 0.04, 0.49, 0.78, 0.05, -0.54]),
        bias=0.0,
        mean=model.combination.mean,
        scale=model.combination.scale,
        is_learned=True,
    )
    save_model(model, model_folder(), ranker=None)
    clear_model_cache()
    # User 2 rates crime dramas 5 stars and every other genre 1.5 (see conftest).
    log = store.load_user_interactions([2], like_threshold=4.0, dislike_threshold=2.0)
    liked = store.get_item_records(log.items[log.preferences > 0].tolist())
    assert {record.fields["genres"] for record in liked} == {"crime drama"}

    # When a crime drama and a nature documentary are added through the API
    with TestClient(_build_app()) as test_client:
        close = test_client.post(
            "/api/v1/items",
            json={"id": 800, "title": "Crime drama", "fields": {"genres": "crime drama"}},
        )
        far = test_client.post(
            "/api/v1/items",
            json={
                "id": 801,
                "title": "Nature documentary",
                "fields": {"genres": "nature documentary"},
            },
        )
        response = test_client.get("/api/v1/recommendations/2", params={"top_n": 10, "fresh": True})

    # Then the crime drama is on the user's list, with a reason naming a liked item, and
    # the documentary is not
    assert close.status_code == 201
    assert far.status_code == 201
    listed = {item["item_id"]: item for item in response.json()["items"]}
    assert 800 in listed
    assert listed[800]["reason"] == "similar"
    assert listed[800]["reason_item_id"] in {record.item_id for record in liked}
    assert 801 not in listed


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "payload",
    [
        '{"external_id": "sku\\u0000", "title": "x"}',
        '{"id": 900, "title": "a\\u0000b"}',
        '{"id": 900, "title": "ok", "tags": ["\\u0000"]}',
        '{"id": 900, "title": "ok", "fields": {"genres": "\\u0000"}}',
    ],
)
def test_create_item_rejects_nul_character(client: TestClient, payload: str) -> None:
    """PostgreSQL cannot store NUL in text, so a NUL anywhere is a 422, not a server error."""
    response = client.post(
        "/api/v1/items", content=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "NUL" in response.text


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_external_user_id_with_nul_is_422(client: TestClient) -> None:
    """A NUL in the external user id is rejected before it reaches the database."""
    response = client.get("/api/v1/recommendations", params={"external_user_id": "u\x00"})
    assert response.status_code == 422


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_run_id_with_nul_is_422(client: TestClient) -> None:
    """A NUL in `run_id` is rejected before it reaches the database."""
    response = client.get("/api/v1/recommendations/3", params={"run_id": "r\x00"})
    assert response.status_code == 422
    assert "`run_id`" in response.text
