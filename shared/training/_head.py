"""The `head` method: a linear or logistic head on frozen sentence embeddings.

Embeddings are the encoder's mean-pooled, L2-normalised last hidden states,
the way sentence-transformers computes them for all-MiniLM-L6-v2. The fitted
weights are copied into `EncoderForSequenceClassification.classifier`, so the
head method produces the same kind of folder as every other method and its
logits equal the logistic regression's decision function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from shared.inference.batching import iter_length_buckets
from shared.training.config import HeadOptions
from shared.training.modeling import EncoderForSequenceClassification

__all__ = ["embed_texts", "fit_head", "install_head"]

logger = logging.getLogger(__name__)


@torch.inference_mode()
def embed_texts(
    model: EncoderForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int = 128,
    max_length: int = 64,
    show_progress: bool = True,
) -> np.ndarray:
    """Return the pooled sentence vectors fed to the classifier head, shape (n, dim)."""
    model.eval()
    device = next(model.parameters()).device
    lengths = [
        len(ids)
        for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    ]
    vectors = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    batches = list(iter_length_buckets(lengths, batch_size))
    for batch in tqdm(batches, desc="Embedding", unit="batch", disable=not show_progress):
        encoded = tokenizer(
            [texts[index] for index in batch],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(device)
        hidden = model.encoder(**encoded).last_hidden_state  # (B, T, D)
        vectors[batch] = model.pool(hidden, encoded["attention_mask"]).float().cpu().numpy()
    return vectors


def fit_head(
    *,
    train_x: np.ndarray,
    train_y: np.ndarray,
    dev_x: np.ndarray,
    dev_y: np.ndarray,
    num_labels: int,
    options: HeadOptions,
    balanced: bool,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Fit the head and return its weight (C, D), bias (C,) and a log history.

    The log history has one evaluation entry per candidate (`step` numbers the
    candidates of `c_grid`), in the form of transformers'
    `Trainer.state.log_history`, so the same plots apply.
    """
    if options.kind == "linear":
        return _fit_linear(
            train_x,
            train_y,
            dev_x,
            dev_y,
            num_labels=num_labels,
            options=options,
            balanced=balanced,
            seed=seed,
        )
    return _fit_logistic(
        train_x, train_y, dev_x, dev_y, options=options, balanced=balanced, seed=seed
    )


def _fit_logistic(
    train_x: np.ndarray,
    train_y: np.ndarray,
    dev_x: np.ndarray,
    dev_y: np.ndarray,
    *,
    options: HeadOptions,
    balanced: bool,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    history: list[dict[str, Any]] = []
    best: tuple[float, LogisticRegression] | None = None
    for step, c_value in enumerate(options.c_grid, start=1):
        started = time.perf_counter()
        head = LogisticRegression(
            C=c_value,
            max_iter=options.max_iter,
            class_weight="balanced" if balanced else None,
            random_state=seed,
        )
        head.fit(train_x, train_y)
        accuracy = float((head.predict(dev_x) == dev_y).mean()) if len(dev_y) else float("nan")
        history.append({"step": step, "C": c_value, "eval_accuracy": accuracy})
        logger.info(
            "logistic head fitted C=%s dev_accuracy=%.4f seconds=%.1f",
            c_value,
            accuracy,
            time.perf_counter() - started,
        )
        if best is None or accuracy > best[0]:
            best = (accuracy, head)
    assert best is not None, "c_grid is validated to be non-empty"
    weight, bias = _as_softmax_head(best[1])
    return weight, bias, history


def _as_softmax_head(head: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    """Return (C, D) weights whose softmax equals the model's probabilities.

    scikit-learn stores one row for two classes: p(class 1) = sigmoid(w.x + b),
    which is the softmax of the logits (0, w.x + b).
    """
    weight, bias = head.coef_.astype(np.float32), head.intercept_.astype(np.float32)
    if weight.shape[0] == 1:
        weight = np.vstack([np.zeros_like(weight), weight])
        bias = np.concatenate([np.zeros_like(bias), bias])
    return weight, bias


def _fit_linear(
    train_x: np.ndarray,
    train_y: np.ndarray,
    dev_x: np.ndarray,
    dev_y: np.ndarray,
    *,
    num_labels: int,
    options: HeadOptions,
    balanced: bool,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(train_x.shape[1], num_labels)
    torch.nn.init.normal_(layer.weight, std=0.02, generator=generator)
    torch.nn.init.zeros_(layer.bias)
    features, targets = torch.from_numpy(train_x), torch.from_numpy(train_y).long()
    weights = None
    if balanced:
        counts = torch.bincount(targets, minlength=num_labels).clamp(min=1).float()
        weights = len(targets) / (num_labels * counts)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=options.linear_lr, weight_decay=1e-4)
    history: list[dict[str, Any]] = []
    for epoch in range(1, options.linear_epochs + 1):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(features), targets, weight=weights)
        loss.backward()
        optimizer.step()
        if epoch % 20 == 0 or epoch == options.linear_epochs:
            with torch.no_grad():
                accuracy = float(
                    (layer(torch.from_numpy(dev_x)).argmax(-1).numpy() == dev_y).mean()
                )
            history.append(
                {
                    "step": epoch,
                    "epoch": float(epoch),
                    "loss": float(loss),
                    "eval_accuracy": accuracy,
                }
            )
    return layer.weight.detach().numpy(), layer.bias.detach().numpy(), history


def install_head(
    model: EncoderForSequenceClassification, weight: np.ndarray, bias: np.ndarray
) -> None:
    """Copy a fitted head into the model's classifier layer."""
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weight))
        model.classifier.bias.copy_(torch.from_numpy(bias))
