"""Sign-in, sign-out, the language switch and the home page."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.auth import SessionGrant, set_user_language, sign_in, sign_out
from services.console.errors import AuthenticationError, LoginThrottledError
from services.console.rendering import build_gettext
from services.console.security import CSRF_COOKIE, SESSION_COOKIE
from shared.console import ConsoleUser, current_user, render_page
from shared.i18n import LANGUAGES, normalize_language
from shared.settings import get_settings

__all__ = ["router", "safe_next"]

logger = logging.getLogger(__name__)

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Return `target` when it is a path on this site, else ``/`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _is_secure(request: Request) -> bool:
    mode = get_settings().console.secure_cookies
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _login_page(
    request: Request, *, next_path: str, error: str = "", status_code: int = 200
) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render_page(
        request,
        "console/login.html",
        {"next_path": next_path, "error": error, "login_csrf": token},
        status_code=status_code,
    )
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_is_secure(request),
        path="/login",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    next_path: Annotated[str, Query(alias="next", max_length=2000)] = "/",
    lang: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Show the sign-in page in the browser's language (or `lang`)."""
    if getattr(request.state, "user", None) is not None:
        return RedirectResponse(safe_next(next_path), status_code=status.HTTP_303_SEE_OTHER)
    if lang:
        request.state.language = normalize_language(lang)
    return _login_page(request, next_path=safe_next(next_path))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    """Check the password, open a session and go where the user was heading."""
    _ = _gettext(request)
    next_path = safe_next(next_path)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        message = _("This form has expired. Sign in again.")
        return _login_page(request, next_path=next_path, error=message, status_code=403)
    metrics = request.app.state.metrics
    try:
        grant = sign_in(username, password, client=_client(request))
    except LoginThrottledError as exc:
        metrics.sign_ins.labels("throttled").inc()
        message = _(
            "Too many failed sign-ins. Try again in %(seconds)s seconds.",
            seconds=exc.retry_after_s,
        )
        response = _login_page(request, next_path=next_path, error=message, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except AuthenticationError:
        metrics.sign_ins.labels("failed").inc()
        message = _("Invalid user name or password.")
        return _login_page(request, next_path=next_path, error=message, status_code=401)
    metrics.sign_ins.labels("ok").inc()
    return _signed_in(request, grant, next_path)


def _signed_in(request: Request, grant: SessionGrant, next_path: str) -> Response:
    response = RedirectResponse(next_path, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        grant.token,
        max_age=int(get_settings().console.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=_is_secure(request),
        path="/",
    )
    response.delete_cookie(CSRF_COOKIE, path="/login")
    return response


def _gettext(request: Request) -> Callable[..., str]:
    return build_gettext(getattr(request.state, "language", "en"))[0]


@router.post("/logout")
def logout(request: Request, user: Annotated[ConsoleUser, Depends(current_user)]) -> Response:
    """End the session and go back to the sign-in page."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        sign_out(token)
    logger.info("signed out user_id=%s", user.id)
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/account/language")
def choose_language(
    user: Annotated[ConsoleUser, Depends(current_user)],
    language: Annotated[str, Form(max_length=20)],
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    """Store the language the user reads the console in."""
    chosen = language if language in LANGUAGES else normalize_language(language)
    set_user_language(user.id, chosen)
    return RedirectResponse(safe_next(next_path), status_code=status.HTTP_303_SEE_OTHER)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: Annotated[ConsoleUser, Depends(current_user)]) -> HTMLResponse:
    """Show the pages the user may open."""
    return render_page(request, "console/home.html", {})
