"""Offline measures of the support pipeline on labelled tickets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.support.retrieval import KnowledgeIndex
from shared.storage import session_scope

__all__ = ["DraftScores", "RetrievalScores", "evaluate_retrieval", "score_drafts"]


@dataclass(frozen=True)
class DraftScores:
    """Similarity of drafts to reference replies: mean embedding cosine and ROUGE-L F1."""

    mean_cosine: float
    rouge_l: float
    n_drafts: int


@dataclass(frozen=True)
class RetrievalScores:
    """Recall@k and MRR@k of article retrieval, where a hit is an article of the ticket's intent."""

    recall: float
    mrr: float
    k: int
    n_tickets: int


def evaluate_retrieval(
    index: KnowledgeIndex,
    texts: Sequence[str],
    gold_intents: Sequence[str],
    *,
    predicted_intents: Sequence[str | None] | None = None,
    k: int = 5,
) -> RetrievalScores:
    """Search the top `k` articles for each masked ticket text and score the first on-intent hit.

    Args:
        index: The knowledge index to search.
        texts: Ticket texts, cleaned and masked as the pipeline would.
        gold_intents: Each ticket's true intent.
        predicted_intents: The classifier's intents, which boost articles of that
            intent as the service does; ``None`` searches by text alone.
        k: Articles retrieved per ticket.

    Raises:
        ValueError: If the sequences differ in length or are empty.
    """
    if len(texts) != len(gold_intents):
        raise ValueError(f"{len(texts)} texts but {len(gold_intents)} gold intents.")
    if not texts:
        raise ValueError("No tickets to evaluate retrieval on.")
    boosts = list(predicted_intents) if predicted_intents is not None else [None] * len(texts)
    if len(boosts) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(boosts)} predicted intents.")

    reciprocal_ranks = []
    with session_scope() as session:
        for text, gold, boost in zip(texts, gold_intents, boosts, strict=True):
            passages = index.search(session, text, intent=boost, k_articles=k)
            rank = next((p.rank for p in passages if p.intent == gold), None)
            reciprocal_ranks.append(1.0 / rank if rank else 0.0)
    hits = sum(1 for value in reciprocal_ranks if value > 0)
    return RetrievalScores(
        recall=hits / len(texts),
        mrr=sum(reciprocal_ranks) / len(texts),
        k=k,
        n_tickets=len(texts),
    )


def score_drafts(drafts: Sequence[str], references: Sequence[str]) -> DraftScores:
    """Compare each draft with its reference reply using the default sentence embedder.

    Raises:
        ValueError: If the sequences differ in length or are empty.
    """
    from rouge_score import rouge_scorer

    from shared.retrieval import load_text_embedder

    if len(drafts) != len(references):
        raise ValueError(f"{len(drafts)} drafts but {len(references)} references.")
    if not drafts:
        raise ValueError("No drafts to score.")
    embedder = load_text_embedder(None)
    # The embedder returns unit vectors, so the row-wise dot product is the cosine.
    cosines = np.sum(embedder.encode(list(drafts)) * embedder.encode(list(references)), axis=1)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [
        scorer.score(reference, draft)["rougeL"].fmeasure
        for draft, reference in zip(drafts, references, strict=True)
    ]
    return DraftScores(
        mean_cosine=float(np.mean(cosines)), rouge_l=float(np.mean(rouge)), n_drafts=len(drafts)
    )
