"""Domain-adaptive continued pretraining with BERT's masked-LM objective.

Continuing an encoder's pretraining on unlabelled in-domain text before
fine-tuning helps most when the domain differs from the encoder's original
text (Gururangan et al. 2020, "Don't Stop Pretraining", arXiv:2004.10964).
The result is a plain encoder folder that any classifier method accepts as
its base model.

NOTE: sentence-embedding checkpoints such as all-MiniLM-L6-v2 ship without
BERT's masked-LM head, so its transform layer starts from random weights and
the perplexity before training is in the tens of thousands. The figure to
watch is how far it falls, not its starting value.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import (
    AutoModelForMaskedLM,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)

from shared.errors import DataError
from shared.inference.device import select_device
from shared.training._common import load_tokenizer, resolve_base_path
from shared.training.config import MlmTrainingConfig
from shared.training.modeling import quiet_load_report

__all__ = ["MlmResult", "train_mlm"]

logger = logging.getLogger(__name__)

# Files that tell sentence-transformers how to pool; copied so the adapted
# encoder embeds the same way as its base.
_SENTENCE_TRANSFORMER_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
_SENTENCE_TRANSFORMER_DIRS = ("1_Pooling", "2_Normalize")


@dataclass(frozen=True)
class MlmResult:
    """Adapted encoder folder, with its held-out perplexity before and after training."""

    model_dir: Path
    perplexity_before: float | None
    perplexity_after: float | None
    train_seconds: float
    n_texts: int
    log_history: list[dict[str, Any]]


def train_mlm(texts: Sequence[str], config: MlmTrainingConfig, *, output_dir: Path) -> MlmResult:
    """Continue pretraining an encoder on `texts` and save it to ``output_dir/model``.

    Args:
        texts: Unlabelled in-domain texts; exclude every text of the test
            splits you will evaluate on.
        config: Base model and hyperparameters.
        output_dir: Run folder; receives ``model/`` and ``trainer/``.

    Returns:
        The saved encoder folder and the held-out perplexity before and after.

    Raises:
        DataError: If fewer than 10 non-empty texts are given.
    """
    cleaned = [text for text in texts if text and text.strip()]
    if len(cleaned) < 10:
        raise DataError(f"`texts` must hold at least 10 non-empty texts, got {len(cleaned)}.")
    base_path = resolve_base_path(config.base_model)
    tokenizer = load_tokenizer(base_path)
    with quiet_load_report():
        model = AutoModelForMaskedLM.from_pretrained(str(base_path))
    train, held_out = _split(cleaned, config)
    tokenize = _tokenizer_fn(tokenizer, config.max_length)
    train_set = Dataset.from_dict({"text": train}).map(
        tokenize, batched=True, remove_columns=["text"]
    )
    eval_set = (
        Dataset.from_dict({"text": held_out}).map(tokenize, batched=True, remove_columns=["text"])
        if held_out
        else None
    )
    trainer = Trainer(
        model=model,
        args=_arguments(config, output_dir / "trainer", has_eval=eval_set is not None),
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=config.mlm_probability, seed=config.seed
        ),
    )

    before = _perplexity(trainer) if eval_set is not None else None
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    after = _perplexity(trainer) if eval_set is not None else None
    logger.info(
        "mlm finished texts=%d seconds=%.1f perplexity_before=%s after=%s",
        len(cleaned),
        seconds,
        before,
        after,
    )

    model_dir = output_dir / "model"
    _save_encoder(model, tokenizer, base_path=base_path, model_dir=model_dir)
    return MlmResult(
        model_dir, before, after, seconds, len(cleaned), list(trainer.state.log_history)
    )


def _split(texts: list[str], config: MlmTrainingConfig) -> tuple[list[str], list[str]]:
    shuffled = list(texts)
    random.Random(config.seed).shuffle(shuffled)
    held = int(len(shuffled) * config.eval_fraction)
    return shuffled[held:], shuffled[:held]


def _tokenizer_fn(tokenizer: Any, max_length: int) -> Any:
    def tokenize(batch: dict[str, list[str]]) -> Any:
        return tokenizer(
            batch["text"], truncation=True, max_length=max_length, return_special_tokens_mask=True
        )

    return tokenize


def _arguments(config: MlmTrainingConfig, run_dir: Path, *, has_eval: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(run_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=50,
        report_to=["tensorboard"],
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",
        use_cpu=select_device().type == "cpu",
    )


def _perplexity(trainer: Trainer) -> float:
    loss = trainer.evaluate()["eval_loss"]
    return float(math.exp(min(loss, 50.0)))


def _save_encoder(model: Any, tokenizer: Any, *, base_path: Path, model_dir: Path) -> None:
    """Save only the encoder (the MLM head is discarded), plus the pooling files."""
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.base_model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    for name in _SENTENCE_TRANSFORMER_FILES:
        if (base_path / name).is_file():
            shutil.copy2(base_path / name, model_dir / name)
    for name in _SENTENCE_TRANSFORMER_DIRS:
        if (base_path / name).is_dir():
            shutil.copytree(base_path / name, model_dir / name)
