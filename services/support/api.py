"""REST routes of the support service; the console mounts this router under ``/api/v1``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel

from services.support import store
from services.support.cleaning import TicketTextError
from services.support.dispatch import enqueue_tickets
from services.support.errors import (
    DraftNotFoundError,
    EmptyDraftError,
    KnowledgeBaseError,
    TicketNotFoundError,
)
from services.support.feedback import record_feedback
from services.support.kb import add_article, remove_article, search_articles
from services.support.models import Feedback
from services.support.pipeline import store_ticket
from services.support.schemas import (
    MAX_ROW_ID,
    ArticleCreate,
    ArticlePublic,
    DraftPublic,
    FeedbackCreate,
    FeedbackPublic,
    PassagePublic,
    SearchHitPublic,
    TicketCreate,
    TicketDetail,
    TicketPublic,
    TicketsCreate,
)
from shared.console import ConsoleUser, current_user
from shared.storage import session_scope

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/support", tags=["support"])

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


class TicketAccepted(BaseModel):
    """The stored ticket's id; `created` is false when its `external_id` was known."""

    id: int
    created: bool


class BatchItemResult(BaseModel):
    """One ticket of a batch: its id, or why it was refused."""

    index: int
    id: int | None = None
    created: bool = False
    error: str | None = None


@router.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=TicketAccepted)
def create_ticket(request: TicketCreate, background: BackgroundTasks) -> TicketAccepted:
    """Submit a ticket for triage, retrieval and drafting."""
    try:
        result = store_ticket(request)
    except TicketTextError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    if result.created:
        enqueue_tickets([result.ticket_id], background=background)
    return TicketAccepted(id=result.ticket_id, created=result.created)


@router.post("/tickets/batch", response_model=list[BatchItemResult])
def create_tickets(request: TicketsCreate, background: BackgroundTasks) -> list[BatchItemResult]:
    """Submit several tickets; a refused one does not stop the others."""
    results = []
    for index, ticket in enumerate(request.tickets):
        try:
            stored = store_ticket(ticket)
        except TicketTextError as exc:
            results.append(BatchItemResult(index=index, error=str(exc)))
            continue
        results.append(BatchItemResult(index=index, id=stored.ticket_id, created=stored.created))
    created = [item.id for item in results if item.created and item.id is not None]
    if created:
        enqueue_tickets(created, background=background)
    return results


@router.get("/tickets", response_model=list[TicketPublic])
def list_tickets(
    status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
    intent: Annotated[str | None, Query(max_length=200)] = None,
    needs_human: bool | None = None,
    out_of_scope: bool | None = None,
    min_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    max_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TicketPublic]:
    """List tickets, newest first, with optional filters."""
    filters = store.TicketFilters(
        status=status_,
        intent=intent,
        needs_human=needs_human,
        is_out_of_scope=out_of_scope,
        min_confidence=min_confidence,
        max_confidence=max_confidence,
    )
    with session_scope() as session:
        rows = store.list_tickets(session, filters, limit=limit, offset=offset)
        return [TicketPublic.model_validate(row) for row in rows]


@router.get("/tickets/{ticket_id}", response_model=TicketDetail)
def get_ticket(ticket_id: RowId) -> TicketDetail:
    """Return a ticket with its passages and latest draft, customer text masked."""
    with session_scope() as session:
        try:
            ticket = store.get_ticket(session, ticket_id)
        except TicketNotFoundError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
        draft = store.latest_draft(session, ticket.id)
        detail = TicketDetail.model_validate(ticket)
        detail.passages = [
            PassagePublic.model_validate(row) for row in store.get_passages(session, ticket.id)
        ]
        detail.draft = DraftPublic.model_validate(draft) if draft else None
        return detail


@router.post(
    "/tickets/{ticket_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackPublic,
)
def create_feedback(
    ticket_id: RowId, request: FeedbackCreate, user: Annotated[ConsoleUser, Depends(current_user)]
) -> FeedbackPublic:
    """Accept, edit or reject the ticket's latest draft, as the signed-in user."""
    try:
        feedback_id = record_feedback(ticket_id, request, agent=user.username)
    except (TicketNotFoundError, DraftNotFoundError) as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except EmptyDraftError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    with session_scope() as session:
        return FeedbackPublic.model_validate(session.get(Feedback, feedback_id))


@router.get("/kb/search", response_model=list[SearchHitPublic])
def search_knowledge_base(
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    intent: Annotated[str | None, Query(max_length=200)] = None,
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[SearchHitPublic]:
    """Search the knowledge base."""
    try:
        return search_articles(q, intent=intent, k=k)
    except KnowledgeBaseError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.post("/kb/articles", status_code=status.HTTP_201_CREATED, response_model=ArticlePublic)
def create_article(request: ArticleCreate) -> ArticlePublic:
    """Add an article; it is searchable at once, without a rebuild."""
    try:
        return add_article(request)
    except KnowledgeBaseError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.delete("/kb/articles/{article_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_article(article_id: RowId) -> None:
    """Retire an article; it stops appearing in searches at once."""
    if not remove_article(article_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No article has id {article_id}.")
