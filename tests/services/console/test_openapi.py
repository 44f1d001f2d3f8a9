"""The REST API's OpenAPI schema validates, and generated requests never get a 5xx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from shared.settings import reset_settings
from shared.storage import dispose_engine, upgrade_database
from tests.services.console.conftest import ConsoleUsers, sign_in
from tests.services.console.live import serve_console
from tests.services.support.conftest import SupportModels

# Examples per API operation: enough to reach every parameter's edge cases
# (empty, huge, non-ASCII, wrong type) while the whole run stays near a minute.
MAX_EXAMPLES = 25


def test_openapi_schema_validates(console_app: FastAPI) -> None:
    schema = TestClient(console_app).get("/api/v1/openapi.json").json()
    validate(schema)
    paths = set(schema["paths"])
    assert "/api/v1/support/tickets" in paths
    assert "/api/v1/models" in paths
    assert not any(path.startswith(("/login", "/support", "/models")) for path in paths)
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


_ASSET_REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']|url: '([^']+)'""")


def test_api_docs_load_without_any_external_host(console_app: FastAPI) -> None:
    """Swagger UI's script, style sheet and icon come from the console itself."""
    client = TestClient(console_app)
    sign_in(client, "root")
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert '"validatorUrl": null' in page.text
    references = [first or second for first, second in _ASSET_REFERENCE.findall(page.text)]
    assert len(references) == 4
    for reference in references:
        assert reference.startswith("/"), reference
        assert not reference.startswith("//"), reference
    signed_out = TestClient(console_app)
    for reference in references:
        asset = signed_out.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 100, reference
    script = signed_out.get(next(ref for ref in references if ref.endswith(".js")))
    assert "SwaggerUIBundle" in script.text


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """SQLite: the fuzzing run checks the routes, not the database backend."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    monkeypatch.setenv("DIPTYCH_DATABASE_URL", url)
    reset_settings()
    upgrade_database(url)
    yield url
    dispose_engine()


def test_generated_requests_get_no_server_error(
    support_env: SupportModels,
    knowledge_base: int,
    console_users: ConsoleUsers,
    api_token: str,
) -> None:
    """Schemathesis sends schema-derived and malformed requests to the served API."""
    headers = {"Authorization": f"Bearer {api_token}"}
    failures: list[str] = []
    with serve_console() as url:
        raw = httpx.get(f"{url}/api/v1/openapi.json", timeout=30).json()
        schema = schemathesis.openapi.from_dict(raw)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 8
        for operation in operations:

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def check(case: schemathesis.Case) -> None:
                response = case.call(base_url=url, headers=headers, timeout=60)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:300]}"
                    )

            check()
    assert failures == [], "\n".join(failures)
