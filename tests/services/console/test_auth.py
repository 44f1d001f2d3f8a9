"""Sign-in, sessions, CSRF tokens, roles and API tokens of the console."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.console.auth import create_api_token, create_user, resolve_session, sign_in
from services.console.errors import (
    AuthenticationError,
    LoginThrottledError,
    UserError,
    UserNotFoundError,
)
from services.console.models import ApiToken, User, UserSession
from services.console.pages import safe_next
from shared.settings import reset_settings
from shared.storage import session_scope
from tests.services.console.conftest import PASSWORD, ConsoleUsers
from tests.services.console.conftest import sign_in as sign_in_client


def test_create_user_stores_an_argon2_hash(console_users: ConsoleUsers) -> None:
    """The password is stored as an argon2id hash, never in the clear."""
    with session_scope() as session:
        stored = session.scalar(select(User).where(User.username == "amy"))
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


@pytest.mark.parametrize(
    ("username", "password", "role", "language", "match"),
    [
        ("", PASSWORD, "agent", "en", "user name"),
        ("has space", PASSWORD, "agent", "en", "user name"),
        ("x" * 101, PASSWORD, "agent", "en", "user name"),
        ("bob", "short", "agent", "en", "password"),
        ("bob", PASSWORD, "root", "en", "role"),
        ("bob", PASSWORD, "agent", "fr", "language"),
        ("amy", PASSWORD, "agent", "en", "exists"),
    ],
)
def test_create_user_rejects_invalid_fields(
    console_users: ConsoleUsers, username: str, password: str, role: str, language: str, match: str
) -> None:
    """Each invalid field is named in the error."""
    with pytest.raises(UserError, match=match):
        create_user(username, password, role=role, language=language)


@pytest.mark.parametrize(
    ("timezone", "hint"),
    [
        ("Mars/Olympus", ""),
        ("asia/shanghai", " (did you mean 'Asia/Shanghai'?)"),
        ("localtime", ""),
        ("../etc/passwd", ""),
        ("", ""),
    ],
)
def test_create_user_rejects_an_unknown_time_zone(
    console_users: ConsoleUsers, timezone: str, hint: str
) -> None:
    """The error names the value and how to write a zone; nothing is stored."""
    with pytest.raises(UserError) as raised:
        create_user("bob", PASSWORD, role="agent", timezone=timezone)
    assert str(raised.value) == (
        f"invalid time zone {timezone!r}: use an IANA zone name such as "
        f"'Asia/Shanghai', 'Europe/Berlin' or 'UTC'{hint}"
    )
    with session_scope() as session:
        assert session.scalar(select(User).where(User.username == "bob")) is None


def test_create_user_stores_an_iana_time_zone(console_users: ConsoleUsers) -> None:
    created = create_user("bob", PASSWORD, role="agent", timezone=" Asia/Shanghai ")
    assert created.timezone == "Asia/Shanghai"


def test_sign_in_with_a_wrong_password_fails(console_users: ConsoleUsers) -> None:
    with pytest.raises(AuthenticationError):
        sign_in("amy", "wrong password", client="127.0.0.1")
    with pytest.raises(AuthenticationError):
        sign_in("nobody", PASSWORD, client="127.0.0.1")


def test_sign_in_is_throttled_after_repeated_failures(
    console_users: ConsoleUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the failure limit even the right password is refused until the window passes."""
    monkeypatch.setenv("DIPTYCH_CONSOLE__LOGIN_MAX_FAILURES", "3")
    reset_settings()
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            sign_in("amy", "wrong password", client="10.0.0.1")
    with pytest.raises(LoginThrottledError) as raised:
        sign_in("amy", PASSWORD, client="10.0.0.2")
    assert 1 <= raised.value.retry_after_s <= 901
    grant = sign_in("root", PASSWORD, client="10.0.0.1")
    assert grant.user.role == "admin"


def test_sign_in_is_throttled_per_client(
    console_users: ConsoleUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guessing many names from one address hits the per-client limit."""
    monkeypatch.setenv("DIPTYCH_CONSOLE__LOGIN_MAX_FAILURES_PER_CLIENT", "2")
    reset_settings()
    for name in ("a1", "a2"):
        with pytest.raises(AuthenticationError):
            sign_in(name, "guess", client="10.9.9.9")
    with pytest.raises(LoginThrottledError):
        sign_in("root", PASSWORD, client="10.9.9.9")


def test_session_token_is_stored_as_a_digest(console_users: ConsoleUsers) -> None:
    grant = sign_in("amy", PASSWORD, client="127.0.0.1")
    with session_scope() as session:
        hashes = list(session.scalars(select(UserSession.token_hash)))
    assert grant.token not in hashes
    assert len(hashes) == 1
    resolved = resolve_session(grant.token)
    assert resolved is not None
    assert resolved[0].username == "amy"
    assert resolved[1] == grant.csrf_token
    assert resolve_session(grant.token + "x") is None


def test_api_token_stored_as_digest(console_users: ConsoleUsers) -> None:
    token = create_api_token("amy", name="importer")
    with session_scope() as session:
        row = session.scalar(select(ApiToken))
    assert row is not None
    assert row.token_hash != token
    assert token.startswith(row.prefix)
    with pytest.raises(UserNotFoundError):
        create_api_token("nobody", name="x")
    with pytest.raises(UserError):
        create_api_token("amy", name="  ")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/support", "/support"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_safe_next_rejects_other_sites(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_login_page_follows_accept_language(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    chinese = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    english = client.get("/login", headers={"Accept-Language": "en-GB"})
    assert '<html lang="zh-CN">' in chinese.text
    assert "登录" in chinese.text
    assert "Sign in" in english.text
    assert "登录" not in english.text


def test_session_cookie_is_http_only_and_same_site(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": "amy",
            "password": PASSWORD,
            "csrf_token": client.cookies.get("diptych_csrf") or "",
        },
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"]
    assert response.status_code == 303
    assert "diptych_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_https(console_app: FastAPI) -> None:
    """Behind HTTPS the cookie never travels over plain HTTP."""
    client = TestClient(console_app, base_url="https://console.test")
    client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": "amy",
            "password": PASSWORD,
            "csrf_token": client.cookies.get("diptych_csrf") or "",
        },
        follow_redirects=False,
    )
    assert "Secure" in response.headers["set-cookie"]


def test_login_form_without_its_token_is_rejected(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    client.get("/login")
    response = client.post("/login", data={"username": "amy", "password": PASSWORD})
    assert response.status_code == 403
    assert "diptych_session" not in client.cookies


def test_login_failure_and_throttle_answer_with_the_page(
    console_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIPTYCH_CONSOLE__LOGIN_MAX_FAILURES", "2")
    reset_settings()
    client = TestClient(console_app)
    client.get("/login")
    data = {"username": "amy", "password": "nope", "csrf_token": client.cookies["diptych_csrf"]}
    assert client.post("/login", data=data).status_code == 401
    assert client.post("/login", data=data).status_code == 401
    throttled = client.post("/login", data={**data, "password": PASSWORD})
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1


def test_anonymous_page_redirects_to_login(console_app: FastAPI) -> None:
    response = TestClient(console_app).get("/support?status=new", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fsupport%3Fstatus%3Dnew"


def test_anonymous_api_request_gets_401(console_app: FastAPI) -> None:
    response = TestClient(console_app).get("/api/v1/support/tickets")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("username", "path", "code"),
    [
        ("amy", "/support", 200),
        ("amy", "/support/kb", 200),
        ("amy", "/models", 403),
        ("李娜", "/support", 403),
        ("李娜", "/support/tickets/1", 403),
        ("李娜", "/models", 403),
        ("root", "/models", 200),
        ("root", "/support", 200),
    ],
)
def test_pages_check_the_role(console_app: FastAPI, username: str, path: str, code: int) -> None:
    """A wrong role gets 403 with a page in the user's language, not a hidden link."""
    client = TestClient(console_app)
    sign_in_client(client, username)
    response = client.get(path)
    assert response.status_code == code
    if code == 403 and username == "李娜":
        assert "无权访问" in response.text


def test_navigation_shows_only_allowed_links(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    sign_in_client(client, "amy")
    home = client.get("/").text
    assert 'href="/support"' in home
    assert 'href="/models"' not in home


def test_post_without_csrf_token_is_rejected(console_app: FastAPI) -> None:
    """Cookie-signed unsafe requests need the token, in a form field or the header."""
    client = TestClient(console_app)
    token = sign_in_client(client, "root")
    assert client.post("/account/language", data={"language": "zh_CN"}).status_code == 403
    wrong = {"language": "zh_CN", "csrf_token": "forged"}
    assert client.post("/account/language", data=wrong).status_code == 403
    multipart = client.post(
        "/account/language",
        files={"language": (None, "zh_CN"), "csrf_token": (None, token)},
        follow_redirects=False,
    )
    assert multipart.status_code == 303
    by_header = client.post(
        "/account/language",
        data={"language": "en"},
        headers={"X-CSRF-Token": token},
        follow_redirects=False,
    )
    assert by_header.status_code == 303


def test_language_choice_is_stored_per_user(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    token = sign_in_client(client, "amy")
    client.post("/account/language", data={"language": "zh_CN", "csrf_token": token})
    assert "工单" in client.get("/").text
    with session_scope() as session:
        stored = session.scalar(select(User.language).where(User.username == "amy"))
    assert stored == "zh_CN"


def test_logout_ends_the_session(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    token = sign_in_client(client, "amy")
    cookie = client.cookies["diptych_session"]
    response = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert resolve_session(cookie) is None
    with session_scope() as session:
        assert session.scalar(select(func.count(UserSession.id))) == 0


def test_api_token_signs_requests_in(console_app: FastAPI, console_users: ConsoleUsers) -> None:
    """A bearer token needs no CSRF token and carries its user's role."""
    client = TestClient(console_app)
    agent_token = create_api_token("amy", name="bot")
    analyst_token = create_api_token("李娜", name="bot")
    me = client.get("/api/v1/console/me", headers={"Authorization": f"Bearer {agent_token}"})
    assert me.json()["username"] == "amy"
    refused = client.get("/api/v1/models", headers={"Authorization": f"Bearer {agent_token}"})
    assert refused.status_code == 403
    analyst = client.get(
        "/api/v1/support/tickets", headers={"Authorization": f"Bearer {analyst_token}"}
    )
    assert analyst.status_code == 403
    forged = client.get("/api/v1/console/me", headers={"Authorization": "Bearer dpt_forged"})
    assert forged.status_code == 401


def test_background_requests_do_not_extend_the_session(console_users: ConsoleUsers) -> None:
    """The queue's polling must not keep an abandoned session alive."""
    import datetime as dt

    from services.console.auth import hash_token

    grant = sign_in("amy", PASSWORD, client="127.0.0.1")
    earlier = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with session_scope() as session:
        row = session.scalar(
            select(UserSession).where(UserSession.token_hash == hash_token(grant.token))
        )
        assert row is not None
        row.expires_at = earlier

    def stored_expiry() -> dt.datetime:
        with session_scope() as session:
            value = session.scalar(select(UserSession.expires_at))
        assert value is not None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value

    assert resolve_session(grant.token, is_activity=False) is not None
    assert stored_expiry() == earlier
    assert resolve_session(grant.token) is not None
    assert stored_expiry() > earlier + dt.timedelta(hours=10)
