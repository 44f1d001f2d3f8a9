"""Errors of the support service, on top of the core's tree in `shared.errors`.

DiptychError
└── SupportError
    ├── TicketNotFoundError    no ticket with that id
    ├── DraftNotFoundError     the ticket has no draft to give feedback on
    └── KnowledgeBaseError     the knowledge base is empty or its index is unusable
"""

from __future__ import annotations

from shared.errors import DiptychError

__all__ = ["DraftNotFoundError", "KnowledgeBaseError", "SupportError", "TicketNotFoundError"]


class SupportError(DiptychError):
    """Base class of the support service's errors."""


class TicketNotFoundError(SupportError, LookupError):
    """No ticket has the requested id."""


class DraftNotFoundError(SupportError, LookupError):
    """The ticket has no draft yet."""


class KnowledgeBaseError(SupportError, ValueError):
    """The knowledge base is empty or its search index cannot be used."""
