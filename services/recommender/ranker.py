"""The ranker: the encoder fine-tuned on behaviour, scoring user-candidate pairs.

Training pairs are (item, next item) from each user's likes in time order: the
anchor is the text of a liked item and the positive the text of the next item
that user liked. `MultipleNegativesRankingLoss` (Henderson et al. 2017, as
sentence-transformers implements it) treats the other positives in a batch as
negatives, so items that follow each other in behaviour move close together.
A user's ranker profile is the recency-weighted mean of their items' ranker
vectors, and the ranker score of a candidate is its cosine with that profile.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset

from services.recommender.behaviour import Catalogue, InteractionLog
from shared.basemodels import default_encoder
from shared.errors import TrainingError
from shared.retrieval import TextEmbedder
from shared.settings import RecommenderSettings

__all__ = ["RankerTraining", "build_ranker_pairs", "fine_tune_ranker"]

logger = logging.getLogger(__name__)

# Fewer pairs than this cannot fill a few batches; the base encoder is kept then.
MIN_PAIRS = 64


@dataclass(frozen=True)
class RankerTraining:
    """A finished fine-tuning: the saved encoder folder, pair count and wall time."""

    model_dir: Path
    pairs: int
    seconds: float


def build_ranker_pairs(
    log: InteractionLog, catalogue: Catalogue, *, limit: int, seed: int
) -> list[tuple[str, str]]:
    """Sample up to `limit` (liked item text, next liked item text) pairs from `log`."""
    rows = catalogue.rows_of(log.items)
    anchors: list[int] = []
    positives: list[int] = []
    for positions in log.group_by_user().values():
        liked = positions[(log.preferences[positions] > 0) & (rows[positions] >= 0)]
        items = rows[liked]
        if len(items) < 2:
            continue
        differs = items[:-1] != items[1:]
        anchors.extend(items[:-1][differs].tolist())
        positives.extend(items[1:][differs].tolist())
    if len(anchors) > limit:
        chosen = np.random.default_rng(seed).choice(len(anchors), size=limit, replace=False)
        anchors = [anchors[i] for i in chosen]
        positives = [positives[i] for i in chosen]
    return [
        (catalogue.texts[a], catalogue.texts[p]) for a, p in zip(anchors, positives, strict=True)
    ]


def fine_tune_ranker(
    log: InteractionLog,
    catalogue: Catalogue,
    *,
    settings: RecommenderSettings,
    output_dir: Path,
    seed: int,
) -> RankerTraining | None:
    """Fine-tune the base encoder on (item, next item) pairs for one epoch.

    Returns:
        The training result, or ``None`` when `log` yields fewer than `MIN_PAIRS`
        pairs (the caller keeps the base encoder).

    Raises:
        TrainingError: If sentence-transformers fails to train or save.
    """
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    pairs = build_ranker_pairs(log, catalogue, limit=settings.ranker_pairs, seed=seed)
    if len(pairs) < MIN_PAIRS:
        logger.info("ranker not fine-tuned pairs=%d minimum=%d", len(pairs), MIN_PAIRS)
        return None
    started = time.perf_counter()
    base = default_encoder()
    model = TextEmbedder.from_folder(base.path, model_name=base.name).model
    model.max_seq_length = settings.ranker_max_length
    dataset = Dataset.from_dict(
        {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}
    )
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir.parent / f"{output_dir.name}-checkpoints"),
        per_device_train_batch_size=settings.ranker_batch_size,
        num_train_epochs=1,
        learning_rate=3e-5,
        warmup_steps=0.1,
        seed=seed,
        save_strategy="no",
        report_to="none",
        logging_steps=50,
        use_cpu=not _has_cuda(),
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=arguments,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
    )
    try:
        with warnings.catch_warnings():
            # Torch warns that pinned memory needs an accelerator on every CPU epoch.
            warnings.filterwarnings("ignore", message=r"'pin_memory' argument is set as true")
            trainer.train()
        model.save(str(output_dir))
    except (RuntimeError, OSError, ValueError) as exc:
        raise TrainingError(f"Ranker fine-tuning failed after {len(pairs)} pairs: {exc}") from exc
    seconds = time.perf_counter() - started
    logger.info(
        "ranker fine-tuned pairs=%d seconds=%.1f folder=%s", len(pairs), seconds, output_dir
    )
    return RankerTraining(model_dir=output_dir, pairs=len(pairs), seconds=seconds)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
