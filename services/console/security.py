"""The console's gatekeeper: who sent a request, and whether an unsafe one carries its CSRF token.

A pure ASGI middleware, so that streamed responses (the draft's server-sent
events) pass through untouched. It signs a request in from an API token
(``Authorization: Bearer dpt_...``) or from the session cookie, puts the
`ConsoleUser` on ``request.state.user``, and turns anonymous requests away:
pages redirect to the sign-in page, API routes answer 401. Role checks stay
with the routes (`shared.console.require_role`).

A cookie-signed request with an unsafe method must carry the session's CSRF
token in the ``X-CSRF-Token`` header or a ``csrf_token`` form field
(synchronizer token pattern, OWASP CSRF Prevention Cheat Sheet). Token-signed
requests need none: a browser never adds a bearer header by itself.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from services.console.auth import resolve_api_token, resolve_session
from shared.i18n import negotiate_language, translate

__all__ = [
    "BACKGROUND_HEADER",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "MAX_FORM_BYTES",
    "SESSION_COOKIE",
    "AuthMiddleware",
    "is_api_path",
]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "diptych_session"
# The sign-in form has no session yet, so it uses a double-submit cookie instead.
CSRF_COOKIE = "diptych_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
# Sent by page scripts on requests the user did not make (polling); they do not
# count as activity that keeps a session alive.
BACKGROUND_HEADER = "x-diptych-background"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Forms of the console carry a reply or an article at most; 10 MiB is far above both.
MAX_FORM_BYTES = 10 * 1024 * 1024
PUBLIC_PATHS = frozenset(
    {"/login", "/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/favicon.ico"}
)
PUBLIC_PREFIXES = ("/static/",)


def is_api_path(path: str) -> bool:
    """Return whether `path` belongs to the REST API (JSON answers) rather than the pages."""
    return path == "/api" or path.startswith("/api/")


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class AuthMiddleware:
    """Sign requests in, refuse anonymous ones, and check CSRF tokens on unsafe methods."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = scope.setdefault("state", {})
        state["language"] = negotiate_language(request.headers.get("accept-language"))
        state["csrf_token"] = ""
        refusal = await self._sign_in(request, state)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if state.get("auth") == "session" and request.method not in SAFE_METHODS:
            receive, refusal = await _check_csrf(request, receive, expected=state["csrf_token"])
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _sign_in(self, request: Request, state: dict[str, Any]) -> Response | None:
        path = request.url.path
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            user = await run_in_threadpool(resolve_api_token, credentials.strip())
            if user is None:
                return _refuse_token(path)
            state.update(user=user, auth="token", language=user.language)
            return None
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            is_activity = request.headers.get(BACKGROUND_HEADER) != "1"
            found = await run_in_threadpool(resolve_session, cookie, is_activity=is_activity)
            if found is not None:
                user, csrf_token = found
                state.update(user=user, auth="session", language=user.language)
                state["csrf_token"] = csrf_token
                return None
        if _is_public(path):
            return None
        if is_api_path(path):
            return JSONResponse(
                {"detail": "sign in first: send `Authorization: Bearer <API token>`"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _refuse_token(path: str) -> Response:
    logger.info("API token rejected path=%s", path)
    return JSONResponse(
        {"detail": "invalid or revoked API token; create one with `diptych users token`"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def _check_csrf(
    request: Request, receive: Receive, *, expected: str
) -> tuple[Receive, Response | None]:
    """Compare the request's CSRF token with the session's.

    Returns:
        A `receive` that replays the body (read here when the token is a form
        field), and a refusal response, or ``None`` when the token matches.
    """
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and _is_form(request.headers):
        body, too_large = await _read_body(receive)
        receive = _replay(body)
        if too_large:
            return receive, PlainTextResponse(
                f"request body too large: the limit is {MAX_FORM_BYTES} bytes", status_code=413
            )
        sent = await _form_token(request, body)
    if expected and hmac.compare_digest(sent.encode(), expected.encode()):
        return receive, None
    logger.info("CSRF token missing or wrong path=%s", request.url.path)
    language = request.scope["state"].get("language", "en")
    message = translate(
        "This form has expired or did not come from the console. Reload the page and try again.",
        language,
    )
    if is_api_path(request.url.path):
        return receive, JSONResponse({"detail": message}, status_code=403)
    return receive, PlainTextResponse(message, status_code=403)


def _is_form(headers: Headers) -> bool:
    content_type = headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _form_token(request: Request, body: bytes) -> str:
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(CSRF_FIELD, [""])
        return values[0]
    # Multipart: let Starlette's parser read the buffered body.
    copy = Request(request.scope, receive=_replay(body))
    try:
        form = await copy.form()
    except Exception:  # a malformed body has no token; the refusal says why
        return ""
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else ""
