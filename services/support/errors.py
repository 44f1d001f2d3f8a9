"""Errors of the support service, on top of the core's tree in `shared.errors`.

DiptychError
└── SupportError
    ├── TicketNotFoundError    no ticket with that id
    ├── DraftNotFoundError     the ticket has no draft to give feedback on
    ├── DraftCancelledError    a streamed draft was stopped before it was finished
    ├── TicketAnsweredError    the ticket is answered, so no new draft is written
    ├── EmptyDraftError        a draft without text (kind no_answer) cannot be accepted
    └── KnowledgeBaseError     the knowledge base is empty or its index is unusable
"""

from __future__ import annotations

from shared.errors import DiptychError

__all__ = [
    "DraftCancelledError",
    "DraftNotFoundError",
    "EmptyDraftError",
    "KnowledgeBaseError",
    "SupportError",
    "TicketAnsweredError",
    "TicketNotFoundError",
]


class SupportError(DiptychError):
    """Base class of the support service's errors."""


class TicketNotFoundError(SupportError, LookupError):
    """No ticket has the requested id."""


class DraftNotFoundError(SupportError, LookupError):
    """The ticket has no draft yet."""


class DraftCancelledError(SupportError, RuntimeError):
    """A streamed draft was stopped (client gone, server shutting down) before its end."""


class TicketAnsweredError(SupportError, ValueError):
    """The ticket is answered or closed, so it gets no new draft."""


class EmptyDraftError(SupportError, ValueError):
    """An agent tried to accept a draft that has no text; the reply must be written."""


class KnowledgeBaseError(SupportError, ValueError):
    """The knowledge base is empty or its search index cannot be used."""
