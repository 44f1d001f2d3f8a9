"""Database reads and writes of the console. The sign-in logic goes through here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.console.models import ApiToken, LoginAttempt, User, UserSession

__all__ = [
    "add_api_token",
    "add_login_attempt",
    "add_session",
    "add_user",
    "count_failed_logins",
    "delete_expired_sessions",
    "delete_session",
    "find_api_token",
    "find_session",
    "find_user",
    "list_api_tokens",
    "list_users",
]


def add_user(
    session: Session, *, username: str, password_hash: str, role: str, language: str, timezone: str
) -> User:
    """Store a new user."""
    user = User(
        username=username,
        password_hash=password_hash,
        role=role,
        language=language,
        timezone=timezone,
        is_active=True,
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> User | None:
    """Return the user with that name, or ``None``."""
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> list[User]:
    """Return every user by name."""
    return list(session.scalars(select(User).order_by(User.username)))


def add_session(
    session: Session, *, user: User, token_hash: str, csrf_token: str, expires_at: dt.datetime
) -> UserSession:
    """Store a signed-in session."""
    row = UserSession(
        token_hash=token_hash,
        user_id=user.id,
        csrf_token=csrf_token,
        created_at=dt.datetime.now(dt.UTC),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row


def find_session(session: Session, token_hash: str) -> tuple[UserSession, User] | None:
    """Return the session with that token digest and its user, or ``None``."""
    row = session.execute(
        select(UserSession, User)
        .join(User, UserSession.user_id == User.id)
        .where(UserSession.token_hash == token_hash)
    ).first()
    return (row[0], row[1]) if row else None


def delete_session(session: Session, token_hash: str) -> None:
    """Forget a session (sign-out)."""
    session.execute(delete(UserSession).where(UserSession.token_hash == token_hash))


def delete_expired_sessions(session: Session, now: dt.datetime) -> int:
    """Forget every session that expired before `now`; returns how many."""
    result = session.execute(delete(UserSession).where(UserSession.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)


def add_api_token(
    session: Session, *, user: User, token_hash: str, name: str, prefix: str
) -> ApiToken:
    """Store an API token's digest."""
    row = ApiToken(
        token_hash=token_hash,
        user_id=user.id,
        name=name,
        prefix=prefix,
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    session.flush()
    return row


def find_api_token(session: Session, token_hash: str) -> tuple[ApiToken, User] | None:
    """Return the unrevoked token with that digest and its user, or ``None``."""
    row = session.execute(
        select(ApiToken, User)
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
    ).first()
    return (row[0], row[1]) if row else None


def list_api_tokens(session: Session, user: User) -> list[ApiToken]:
    """Return a user's tokens, newest first."""
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    return list(session.scalars(query))


def add_login_attempt(session: Session, *, username: str, client: str, succeeded: bool) -> None:
    """Record a sign-in attempt."""
    session.add(
        LoginAttempt(
            username=username,
            client=client,
            succeeded=succeeded,
            created_at=dt.datetime.now(dt.UTC),
        )
    )
    session.flush()


def count_failed_logins(
    session: Session, *, since: dt.datetime, username: str | None = None, client: str | None = None
) -> tuple[int, dt.datetime | None]:
    """Count failed sign-ins since `since` for a user name or a client address.

    Returns:
        The count and the time of the oldest counted failure.
    """
    query = select(func.count(LoginAttempt.id), func.min(LoginAttempt.created_at)).where(
        LoginAttempt.succeeded.is_(False), LoginAttempt.created_at >= since
    )
    if username is not None:
        query = query.where(LoginAttempt.username == username)
    if client is not None:
        query = query.where(LoginAttempt.client == client)
    count, oldest = session.execute(query).one()
    return int(count or 0), oldest
