"""Errors of the console.

DiptychError
└── ConsoleError
    ├── UserError               a user name, role, language, time zone or password is invalid
    ├── UserNotFoundError       no user has that name
    ├── AuthenticationError     a sign-in failed (unknown user or wrong password)
    └── LoginThrottledError     too many recent failures: sign-in refused for a while
"""

from __future__ import annotations

from shared.errors import DiptychError

__all__ = [
    "AuthenticationError",
    "ConsoleError",
    "LoginThrottledError",
    "UserError",
    "UserNotFoundError",
]


class ConsoleError(DiptychError):
    """Base class of the console's errors."""


class UserError(ConsoleError, ValueError):
    """A user's name, role, language, time zone or password has an invalid value."""


class UserNotFoundError(ConsoleError, LookupError):
    """No user has the given name."""


class AuthenticationError(ConsoleError, PermissionError):
    """The user name and password do not match an active user."""


class LoginThrottledError(ConsoleError, PermissionError):
    """Sign-in is refused because of recent failures; retry after `retry_after_s` seconds."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
