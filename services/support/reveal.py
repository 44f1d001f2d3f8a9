"""The agent's view of a ticket with its PII restored, and the audit record it leaves."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.support import store
from services.support.privacy import PiiVault, unmask
from shared.storage import session_scope

__all__ = ["RevealedTicket", "reveal_ticket"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevealedTicket:
    """A ticket's subject and text as the customer wrote them (after cleaning)."""

    ticket_id: int
    subject: str
    text: str


def reveal_ticket(ticket_id: int, *, agent: str) -> RevealedTicket:
    """Restore a ticket's masked values for `agent` and record that it was done.

    Raises:
        TicketNotFoundError: If the ticket does not exist.
        ConfigurationError: If the PII key changed since the ticket was stored.
        ValueError: If `agent` is empty: every reveal must name who asked.
    """
    if not agent.strip():
        raise ValueError("`agent` must name who reveals the ticket, got an empty string.")
    vault = PiiVault()
    with session_scope() as session:
        ticket = store.get_ticket(session, ticket_id)
        text = (
            unmask(ticket.text, vault.open(ticket.pii_token)) if ticket.pii_token else ticket.text
        )
        subject = (
            unmask(ticket.subject, vault.open(ticket.subject_pii_token))
            if ticket.subject_pii_token
            else ticket.subject
        )
        store.record_reveal(session, ticket, agent=agent)
    logger.info("ticket revealed ticket_id=%s agent=%s", ticket_id, agent)
    return RevealedTicket(ticket_id=ticket_id, subject=subject, text=text)
