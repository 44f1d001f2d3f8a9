"""Knowledge-base operations: import, add, retire and search articles, index kept in step.

Every change goes to the database first and then to the index under a file
lock, so the console and the workers can both change the knowledge base.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from filelock import FileLock
from sqlalchemy import select

from services.support import store
from services.support.knowledge import find_slots
from services.support.models import Article
from services.support.retrieval import (
    KnowledgeIndex,
    build_knowledge_index,
    knowledge_index_dir,
    load_knowledge_index,
)
from services.support.schemas import ArticleCreate, ArticlePublic, SearchHitPublic
from shared.storage import session_scope

__all__ = [
    "ImportResult",
    "add_article",
    "import_articles",
    "remove_article",
    "search_articles",
    "update_knowledge_index",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    """Counts of an article import."""

    added: int
    skipped: int
    indexed: int


@contextmanager
def update_knowledge_index() -> Iterator[KnowledgeIndex | None]:
    """Yield the saved index under the writers' lock and save it afterwards.

    Yields ``None`` when no index has been built yet; the next build picks the
    change up from the database.
    """
    folder = knowledge_index_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / "articles").is_dir():
            yield None
            return
        index = load_knowledge_index(folder)
        yield index
        index.save()


def import_articles(
    records: Sequence[store.ArticleRecord], *, rebuild: bool = False
) -> ImportResult:
    """Store articles, skipping duplicates, and index the new ones.

    Args:
        records: Articles read from a file or built from a data set.
        rebuild: Rebuild the whole index from the database instead of adding to it.
    """
    with session_scope() as session:
        added, skipped = store.add_articles(session, records)
        if rebuild or not (knowledge_index_dir() / "articles").is_dir():
            with FileLock(str(knowledge_index_dir()) + ".lock"):
                indexed = len(build_knowledge_index(session).articles)
        else:
            with update_knowledge_index() as found:
                if found is not None:
                    found.add_articles(added)
            indexed = len(added)
    logger.info("articles imported added=%d skipped=%d", len(added), skipped)
    return ImportResult(added=len(added), skipped=skipped, indexed=indexed)


def add_article(request: ArticleCreate) -> ArticlePublic:
    """Store one article and index it; a duplicate returns the stored article."""
    record = store.ArticleRecord(
        body=request.body.strip(),
        source="api",
        title=request.title.strip(),
        intent=request.intent,
        slots=find_slots(request.body),
    )
    with session_scope() as session:
        added, _skipped = store.add_articles(session, [record])
        if added:
            with update_knowledge_index() as index:
                if index is not None:
                    index.add_articles(added)
            return ArticlePublic.model_validate(added[0])
        key = store.article_hash(record.body, record.intent)
        existing = session.scalar(select(Article).where(Article.content_hash == key))
        return ArticlePublic.model_validate(existing)


def remove_article(article_id: int) -> bool:
    """Retire an article from the knowledge base and the index.

    Returns:
        ``False`` when no active article has that id.
    """
    with session_scope() as session:
        article = session.get(Article, article_id)
        if article is None or not article.is_active:
            return False
        article.is_active = False
        with update_knowledge_index() as index:
            if index is not None:
                index.remove_articles([article_id])
    return True


def search_articles(query: str, *, intent: str | None = None, k: int = 5) -> list[SearchHitPublic]:
    """Search articles the way ticket retrieval does.

    Raises:
        KnowledgeBaseError: If no index has been built.
    """
    index = load_knowledge_index()
    with session_scope() as session:
        passages = index.search(session, query, intent=intent, k_articles=k)
        rows = {
            row.id: row for row in store.list_articles(session, [p.source_id for p in passages])
        }
        return [
            SearchHitPublic(article=ArticlePublic.model_validate(rows[p.source_id]), score=p.score)
            for p in passages
            if p.source_id in rows
        ]
