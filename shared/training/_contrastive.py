"""The `contrastive` method: SetFit's body training on label-derived pairs.

SetFit samples positive pairs (same label) and negative pairs (different
labels) and tunes the sentence-transformer body with a cosine-similarity loss.
A head is then fitted on the tuned body's embeddings. The body is trained with
the `setfit` library; the head with this package's `head` code, so the result
is an ordinary `EncoderForSequenceClassification` folder.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from shared.errors import TrainingError
from shared.training.config import ContrastiveOptions

__all__ = ["train_contrastive_body"]

logger = logging.getLogger(__name__)


def train_contrastive_body(
    base_path: Path,
    *,
    texts: Sequence[str],
    labels: Sequence[int],
    options: ContrastiveOptions,
    batch_size: int,
    max_length: int,
    seed: int,
    output_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
) -> Path:
    """Tune the encoder on sentence pairs and save it as a plain encoder folder.

    Args:
        base_path: Base encoder folder (a sentence-transformers folder or a
            plain Hugging Face one, which gets mean pooling).
        texts: Training texts.
        labels: Class index of each text.
        options: Pair count, epochs and learning rate.
        batch_size: Pairs per step.
        max_length: Maximum tokens per text.
        seed: Seed for training order.
        output_dir: Where the tuned encoder is written.
        tokenizer: Saved beside the encoder.

    Returns:
        `output_dir`, holding config.json, safetensors weights and the tokenizer.
    """
    from setfit import SetFitModel, Trainer, TrainingArguments

    pickles = sorted(path.name for path in base_path.glob("*.pkl"))
    if pickles:
        # SetFit would unpickle these (its saved heads); loading never unpickles.
        raise TrainingError(
            f"Base model folder {str(base_path)!r} contains pickle files {pickles!r}; "
            "use a folder with safetensors weights only."
        )
    model = SetFitModel.from_pretrained(str(base_path))
    steps = max(1, options.num_pairs // batch_size)
    args = TrainingArguments(
        batch_size=(batch_size, batch_size),
        num_epochs=(options.body_epochs, 1),
        max_steps=steps,
        body_learning_rate=options.body_learning_rate,
        max_length=max_length,
        seed=seed,
        report_to="none",
        output_dir=str(output_dir.parent / "contrastive-checkpoints"),
        save_strategy="no",
        show_progress_bar=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"text": list(texts), "label": list(labels)}),
    )
    with warnings.catch_warnings():
        # SetFit requests pinned memory even when no accelerator exists; on the CPU
        # the request is ignored, and torch warns about it on every epoch.
        warnings.filterwarnings("ignore", message=r"'pin_memory' argument is set as true")
        trainer.train_embeddings(list(texts), list(labels), args=args)
    encoder = model.model_body[0].auto_model
    encoder.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    logger.info("contrastive body trained pairs=%d steps=%d", steps * batch_size, steps)
    return output_dir
