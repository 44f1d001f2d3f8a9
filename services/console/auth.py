"""Users, passwords, sessions and API tokens.

Passwords are hashed with argon2id (argon2-cffi's default parameters, the
RFC 9106 second recommended option). Session and API tokens are 32 random
bytes; only their SHA-256 digest is stored, so a copy of the database signs
no one in. Failed sign-ins are recorded and counted per user name and per
client address; past the limits, sign-in is refused until the window passes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
import zoneinfo
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.console import store
from services.console.errors import (
    AuthenticationError,
    LoginThrottledError,
    UserError,
    UserNotFoundError,
)
from services.console.models import User
from shared.console import ROLES, ConsoleUser
from shared.i18n import LANGUAGES
from shared.settings import get_settings
from shared.storage import session_scope

__all__ = [
    "API_TOKEN_PREFIX",
    "MIN_PASSWORD_CHARS",
    "SessionGrant",
    "check_timezone",
    "create_api_token",
    "create_user",
    "hash_token",
    "resolve_api_token",
    "resolve_session",
    "set_user_language",
    "sign_in",
    "sign_out",
]

logger = logging.getLogger(__name__)

API_TOKEN_PREFIX = "dpt_"
MIN_PASSWORD_CHARS = 8
# argon2 hashes whatever it is given; the cap stops a megabyte "password" from
# costing more than hashing normally does.
MAX_PASSWORD_CHARS = 1024
_USERNAME = re.compile(r"[\w.@+-]{1,100}")
_hasher = PasswordHasher()
# Verifying against this hash when the user does not exist keeps the response
# time of an unknown name equal to that of a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


@dataclass(frozen=True)
class SessionGrant:
    """A new session: the cookie value, the CSRF token its forms carry, and the user."""

    token: str
    csrf_token: str
    user: ConsoleUser
    expires_at: dt.datetime


def hash_token(token: str) -> str:
    """Return the stored digest of a session or API token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _public(user: User) -> ConsoleUser:
    return ConsoleUser(
        id=user.id,
        username=user.username,
        role=user.role,
        language=user.language,
        timezone=user.timezone,
    )


def check_timezone(timezone: str) -> None:
    """Check that `timezone` is an IANA time zone name known to `zoneinfo`.

    Raises:
        UserError: If it is not, with a suggestion when only the case differs.
    """
    # Debian's tzdata also lists "localtime", a link to the server's own zone, not a zone name.
    zones = zoneinfo.available_timezones() - {"localtime"}
    if timezone in zones:
        return
    same_but_case = sorted(zone for zone in zones if zone.casefold() == timezone.casefold())
    hint = f" (did you mean {same_but_case[0]!r}?)" if same_but_case else ""
    raise UserError(
        f"invalid time zone {timezone!r}: use an IANA zone name such as "
        f"'Asia/Shanghai', 'Europe/Berlin' or 'UTC'{hint}"
    )


def _check_user_fields(*, username: str, password: str, role: str, language: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise UserError(
            f"invalid user name {username!r}: use 1 to 100 letters, digits or the "
            "characters . @ + - _"
        )
    if role not in ROLES:
        raise UserError(f"invalid role {role!r}: use one of {list(ROLES)}")
    if language not in LANGUAGES:
        raise UserError(f"invalid language {language!r}: use one of {list(LANGUAGES)}")
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise UserError(
            f"invalid password: it has {len(password)} characters; use "
            f"{MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS}"
        )


def create_user(
    username: str, password: str, *, role: str, language: str = "en", timezone: str = "UTC"
) -> ConsoleUser:
    """Store a user with an argon2 hash of `password`.

    Args:
        username: The name the user signs in with.
        password: The password, 8 to 1024 characters.
        role: One of ``agent``, ``analyst`` or ``admin``.
        language: The console language, ``en`` or ``zh_CN``.
        timezone: An IANA time zone name such as ``Asia/Shanghai``.

    Raises:
        UserError: If a field is invalid or the name is taken.
    """
    username = username.strip()
    timezone = timezone.strip()
    _check_user_fields(username=username, password=password, role=role, language=language)
    check_timezone(timezone)
    try:
        with session_scope() as session:
            user = store.add_user(
                session,
                username=username,
                password_hash=_hasher.hash(password),
                role=role,
                language=language,
                timezone=timezone,
            )
            created = _public(user)
    except IntegrityError:
        raise UserError(
            f"invalid user name {username!r}: a user with that name exists; pick another"
        ) from None
    logger.info("user created user_id=%s role=%s", created.id, role)
    return created


def set_user_language(user_id: int, language: str) -> None:
    """Store the language a user reads the console in.

    Raises:
        UserError: If `language` is not one of the catalog languages.
    """
    if language not in LANGUAGES:
        raise UserError(f"invalid language {language!r}: use one of {list(LANGUAGES)}")
    with session_scope() as session:
        user = session.get(User, user_id)
        if user is not None:
            user.language = language


def sign_in(username: str, password: str, *, client: str) -> SessionGrant:
    """Check a password and open a session.

    Args:
        username: The name typed on the sign-in page.
        password: The password typed there.
        client: The client's address, for the per-client limit.

    Raises:
        LoginThrottledError: If too many recent attempts failed for the name or the client.
        AuthenticationError: If the name is unknown, the user inactive or the password wrong.
    """
    username = username.strip()[:100]
    client = client[:64]
    now = dt.datetime.now(dt.UTC)
    with session_scope() as session:
        _check_throttle(session, username=username, client=client, now=now)
        user = store.find_user(session, username)
        verified = _verify(user.password_hash if user else _DUMMY_HASH, password)
        succeeded = verified and user is not None and user.is_active
        store.add_login_attempt(session, username=username, client=client, succeeded=succeeded)
        grant = _open_session(session, user, password, now=now) if succeeded and user else None
    # Raised after the commit above, so that the failed attempt counts towards the limit.
    if grant is None:
        logger.info("sign-in failed client=%s", client)
        raise AuthenticationError("invalid user name or password")
    logger.info("signed in user_id=%s", grant.user.id)
    return grant


def _open_session(session: Session, user: User, password: str, *, now: dt.datetime) -> SessionGrant:
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    token = secrets.token_urlsafe(32)
    row = store.add_session(
        session,
        user=user,
        token_hash=hash_token(token),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=now + dt.timedelta(hours=get_settings().console.session_hours),
    )
    store.delete_expired_sessions(session, now)
    return SessionGrant(token, row.csrf_token, _public(user), row.expires_at)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password[:MAX_PASSWORD_CHARS])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _check_throttle(session: Session, *, username: str, client: str, now: dt.datetime) -> None:
    settings = get_settings().console
    since = now - dt.timedelta(seconds=settings.login_window_s)
    by_name = store.count_failed_logins(session, since=since, username=username)
    by_client = store.count_failed_logins(session, since=since, client=client)
    for (count, oldest), limit in (
        (by_name, settings.login_max_failures),
        (by_client, settings.login_max_failures_per_client),
    ):
        if count < limit or oldest is None:
            continue
        retry = _utc(oldest) + dt.timedelta(seconds=settings.login_window_s) - now
        retry_after_s = max(1, int(retry.total_seconds()) + 1)
        logger.warning(
            "sign-in throttled client=%s failures=%d retry_after_s=%d",
            client,
            count,
            retry_after_s,
        )
        raise LoginThrottledError(
            f"too many failed sign-ins; try again in {retry_after_s} seconds",
            retry_after_s=retry_after_s,
        )


def resolve_session(token: str, *, is_activity: bool = True) -> tuple[ConsoleUser, str] | None:
    """Return the user and CSRF token of a live session, or ``None``.

    Each activity slides the expiry forward, so a session ends after
    `console.session_hours` without activity. Requests a page makes by itself
    (the queue's refresh) pass ``is_activity=False`` and leave the expiry alone.
    """
    now = dt.datetime.now(dt.UTC)
    with session_scope() as session:
        found = store.find_session(session, hash_token(token))
        if found is None:
            return None
        row, user = found
        if _utc(row.expires_at) < now or not user.is_active:
            return None
        hours = get_settings().console.session_hours
        # Writing on every request would serialise readers on SQLite; once a minute is enough.
        if is_activity and _utc(row.expires_at) - now < dt.timedelta(hours=hours, minutes=-1):
            row.expires_at = now + dt.timedelta(hours=hours)
        return _public(user), row.csrf_token


def sign_out(token: str) -> None:
    """End the session whose cookie contains `token`."""
    with session_scope() as session:
        store.delete_session(session, hash_token(token))


def create_api_token(username: str, *, name: str) -> str:
    """Create an API token for a user and return it; it is shown only this once.

    Raises:
        UserNotFoundError: If no user has that name.
        UserError: If `name` is empty or longer than 100 characters.
    """
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise UserError(f"invalid token name {name!r}: use 1 to 100 characters")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_scope() as session:
        user = store.find_user(session, username)
        if user is None:
            raise UserNotFoundError(
                f"no user is named {username!r}; `diptych users list` shows the names"
            )
        store.add_api_token(
            session, user=user, token_hash=hash_token(token), name=name, prefix=token[:8]
        )
        user_id = user.id
    logger.info("API token created user_id=%s name=%s", user_id, name)
    return token


def resolve_api_token(token: str) -> ConsoleUser | None:
    """Return the active user an API token belongs to, or ``None``."""
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    with session_scope() as session:
        found = store.find_api_token(session, hash_token(token))
        if found is None or not found[1].is_active:
            return None
        row, user = found
        now = dt.datetime.now(dt.UTC)
        if row.last_used_at is None or now - _utc(row.last_used_at) > dt.timedelta(minutes=1):
            row.last_used_at = now
        return _public(user)
