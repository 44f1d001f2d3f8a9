"""Retrieval: knowledge-base articles and resolved tickets for a ticket's text.

Two hybrid indexes (dense vectors in FAISS fused with BM25) live under
``<home>/indexes/support/``: one over article bodies, one over the customer
text of answered tickets, whose passage is the reply that was sent. The
predicted intent boosts documents tagged with it. Adding or removing an
article updates the index in place; another process notices the saved change
on its next search and reloads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from services.support import store
from services.support.errors import KnowledgeBaseError
from services.support.models import Article, Ticket
from services.support.store import PassageRecord
from shared.errors import IndexMismatchError
from shared.retrieval import HybridIndex, TextEmbedder, load_text_embedder
from shared.settings import get_settings

__all__ = [
    "KnowledgeIndex",
    "build_knowledge_index",
    "clear_knowledge_index_cache",
    "knowledge_index_dir",
    "load_knowledge_index",
]

logger = logging.getLogger(__name__)

REBUILD_COMMAND = "diptych support build-index"


def knowledge_index_dir() -> Path:
    """Folder of the support indexes under the configured home."""
    return get_settings().home / "indexes" / "support"


class KnowledgeIndex:
    """The article and resolved-ticket indexes of the support service."""

    def __init__(self, articles: HybridIndex, tickets: HybridIndex, *, folder: Path) -> None:
        self.articles = articles
        self.tickets = tickets
        self.folder = folder
        self._loaded_stamp = _stamp(folder)

    @classmethod
    def empty(cls, embedder: TextEmbedder, *, folder: Path) -> KnowledgeIndex:
        """Return indexes with no documents."""
        return cls(HybridIndex(embedder), HybridIndex(embedder), folder=folder)

    @classmethod
    def load(cls, folder: Path, embedder: TextEmbedder) -> KnowledgeIndex:
        """Load both indexes from `folder`.

        Raises:
            KnowledgeBaseError: If no index was built there, or it was built with
                another embedding model (the message gives the rebuild command).
        """
        if not (folder / "articles").is_dir():
            raise KnowledgeBaseError(
                f"No knowledge-base index in {str(folder)!r}; import articles with "
                "`diptych support import-kb` or run `" + REBUILD_COMMAND + "`."
            )
        try:
            articles = HybridIndex.load(folder / "articles", embedder)
            tickets = (
                HybridIndex.load(folder / "tickets", embedder)
                if (folder / "tickets").is_dir()
                else HybridIndex(embedder)
            )
        except IndexMismatchError as exc:
            raise KnowledgeBaseError(f"{exc} Run `{REBUILD_COMMAND}`.") from exc
        return cls(articles, tickets, folder=folder)

    def save(self) -> None:
        """Write both indexes; other processes reload them on their next search."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.articles.save(self.folder / "articles")
        self.tickets.save(self.folder / "tickets")
        self._loaded_stamp = _stamp(self.folder)

    def is_stale(self) -> bool:
        """Return whether another process saved the indexes since this one loaded them."""
        return _stamp(self.folder) != self._loaded_stamp

    def add_articles(self, articles: Sequence[Article]) -> None:
        """Index articles (an id already indexed is replaced)."""
        if articles:
            self.articles.add(
                [article.id for article in articles],
                [_article_text(article) for article in articles],
                tags=[article.intent for article in articles],
            )

    def remove_articles(self, ids: Sequence[int]) -> None:
        """Drop articles from the index."""
        self.articles.remove(list(ids))

    def add_tickets(self, tickets: Sequence[Ticket]) -> None:
        """Index answered tickets by their customer text."""
        answered = [ticket for ticket in tickets if ticket.resolution]
        if answered:
            self.tickets.add(
                [ticket.id for ticket in answered],
                [ticket.text for ticket in answered],
                tags=[ticket.intent for ticket in answered],
            )

    def search(
        self,
        session: Session,
        text: str,
        *,
        intent: str | None,
        k_articles: int,
        k_tickets: int = 0,
    ) -> list[PassageRecord]:
        """Return ranked passages: the best articles, then similar answered tickets."""
        records = self._article_passages(session, text, intent=intent, k=k_articles)
        if k_tickets and len(self.tickets):
            records += self._ticket_passages(
                session, text, intent=intent, k=k_tickets, first_rank=len(records) + 1
            )
        return records

    def _article_passages(
        self, session: Session, text: str, *, intent: str | None, k: int
    ) -> list[PassageRecord]:
        hits = self.articles.search(text, k=k, tag=intent, tag_mode="boost")
        rows = {
            article.id: article for article in store.list_articles(session, [h.id for h in hits])
        }
        return [
            PassageRecord(
                rank=rank,
                kind="article",
                source_id=hit.id,
                score=float(hit.score),
                intent=rows[hit.id].intent,
                text=rows[hit.id].body,
            )
            for rank, hit in enumerate((h for h in hits if h.id in rows), start=1)
        ]

    def _ticket_passages(
        self, session: Session, text: str, *, intent: str | None, k: int, first_rank: int
    ) -> list[PassageRecord]:
        hits = self.tickets.search(text, k=k, tag=intent, tag_mode="boost")
        records: list[PassageRecord] = []
        for hit in hits:
            ticket = session.get(Ticket, hit.id)
            if ticket is None or not ticket.resolution:
                continue
            records.append(
                PassageRecord(
                    rank=first_rank + len(records),
                    kind="ticket",
                    source_id=ticket.id,
                    score=float(hit.score),
                    intent=ticket.intent,
                    text=ticket.resolution,
                )
            )
        return records


def _article_text(article: Article) -> str:
    # The title of a Bitext article is a request that led to it, so it reads like
    # what customers write. Indexing it beside the body helps both retrievers.
    return f"{article.title}\n{article.body}" if article.title else article.body


def _stamp(folder: Path) -> tuple[float, ...]:
    stamps = []
    for name in ("articles", "tickets"):
        manifest = folder / name / "manifest.json"
        stamps.append(manifest.stat().st_mtime if manifest.exists() else 0.0)
    return tuple(stamps)


def build_knowledge_index(session: Session, *, folder: Path | None = None) -> KnowledgeIndex:
    """Rebuild both indexes from the database and save them."""
    folder = folder or knowledge_index_dir()
    index = KnowledgeIndex.empty(load_text_embedder(None), folder=folder)
    articles = store.list_articles(session)
    index.add_articles(articles)
    index.add_tickets(store.list_resolved_tickets(session))
    index.save()
    clear_knowledge_index_cache()
    logger.info(
        "knowledge index built articles=%d tickets=%d folder=%s",
        len(index.articles),
        len(index.tickets),
        folder,
    )
    return index


_cache: dict[tuple[int, Path], KnowledgeIndex] = {}
_cache_lock = threading.Lock()


def load_knowledge_index(folder: Path | None = None) -> KnowledgeIndex:
    """Return this process's knowledge index, reloading it when another process saved it.

    Raises:
        KnowledgeBaseError: If no index exists yet or it must be rebuilt.
    """
    folder = folder or knowledge_index_dir()
    key = (os.getpid(), folder)
    with _cache_lock:
        index = _cache.get(key)
        if index is None or index.is_stale():
            index = _cache[key] = KnowledgeIndex.load(folder, load_text_embedder(None))
            logger.info("knowledge index loaded folder=%s articles=%d", folder, len(index.articles))
        return index


def clear_knowledge_index_cache() -> None:
    """Forget loaded indexes, e.g. after a rebuild."""
    with _cache_lock:
        _cache.clear()
