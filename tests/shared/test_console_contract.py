"""The console plugin contract: role checks on request.state.user."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient

from shared.console import ConsoleUser, require_role


def _app(role: str | None) -> TestClient:
    app = FastAPI()

    @app.middleware("http")
    async def sign_in(request: Request, call_next):  # type: ignore[no-untyped-def]
        if role is not None:
            request.state.user = ConsoleUser(id=1, username="u", role=role)
        return await call_next(request)

    router = APIRouter(dependencies=[Depends(require_role("analyst"))])

    @router.get("/page")
    def page() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(router)
    return TestClient(app)


@pytest.mark.parametrize(("role", "code"), [("analyst", 200), ("admin", 200), ("agent", 403)])
def test_require_role(role: str, code: int) -> None:
    assert _app(role).get("/page").status_code == code


def test_anonymous_gets_401() -> None:
    assert _app(None).get("/page").status_code == 401


def test_unknown_role_is_refused_at_definition() -> None:
    with pytest.raises(ValueError, match="invalid role"):
        require_role("root")
