"""A sequence classifier that pools the encoder the way sentence encoders are trained.

`AutoModelForSequenceClassification` classifies BERT models from the CLS token
through the pooler. Sentence-embedding checkpoints such as all-MiniLM-L6-v2
were trained with mean pooling and never trained that path. Measured on
Banking77 (4 epochs, seed 42, 2-core CPU): CLS pooler 90.5% test accuracy,
mean pooling with a linear head 93.1%. This module puts a linear head on a
masked mean (or CLS) of the last hidden states, optionally L2-normalised as
sentence-transformers does, so a head fitted on frozen embeddings can be
copied in unchanged.

The model keeps the encoder's own config class (e.g. `BertConfig`) and adds
three attributes (`pooling`, `normalize_embeddings`, `classifier_dropout`),
so PEFT tuners that read `config.num_attention_heads` and friends work, and
the folder loads back with `load_classifier`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = [
    "EncoderForSequenceClassification",
    "Pooling",
    "build_classifier",
    "load_classifier",
    "mean_pool",
    "prepare_classifier_config",
    "quiet_load_report",
]

Pooling = Literal["mean", "cls"]

ARCHITECTURE = "EncoderForSequenceClassification"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that the attention mask keeps.

    Args:
        hidden: Last hidden states, shape (batch, seq, dim).
        attention_mask: 1 for real tokens and 0 for padding, shape (batch, seq).

    Returns:
        The pooled vectors, shape (batch, dim).
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    summed = (hidden * mask).sum(dim=1)  # (B, D)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return summed / counts


def prepare_classifier_config(
    config: PretrainedConfig,
    *,
    label2id: dict[str, int],
    pooling: Pooling = "mean",
    normalize_embeddings: bool = False,
    classifier_dropout: float = 0.1,
) -> PretrainedConfig:
    """Add the label map and the head settings to an encoder's config.

    Args:
        config: The encoder's config, modified in place.
        label2id: Label name to class index; indices must be 0..n-1.
        pooling: How token vectors become one vector: ``"mean"`` or ``"cls"``.
        normalize_embeddings: L2-normalise the pooled vector before the head.
        classifier_dropout: Dropout on the pooled vector during training.

    Returns:
        The same config object.

    Raises:
        ValueError: If the label indices are not exactly 0..n-1.
    """
    if sorted(label2id.values()) != list(range(len(label2id))):
        raise ValueError(
            f"`label2id` must map labels to 0..{len(label2id) - 1} exactly, got {label2id!r}."
        )
    config.label2id = dict(label2id)
    config.id2label = {index: label for label, index in label2id.items()}
    config.num_labels = len(label2id)
    config.pooling = pooling
    config.normalize_embeddings = normalize_embeddings
    config.classifier_dropout = classifier_dropout
    config.architectures = [ARCHITECTURE]
    return config


class EncoderForSequenceClassification(PreTrainedModel):
    """An encoder (any `AutoModel`) with a pooled linear classification head.

    Inputs:
        input_ids, attention_mask, token_type_ids: as for the encoder.
        labels: optional class indices, shape (batch,); the loss is cross-entropy.
        past_key_values: per-layer key/value prefixes from PEFT prefix tuning.

    Example:
        >>> config = prepare_classifier_config(AutoConfig.from_pretrained(path), label2id=labels)
        >>> model = EncoderForSequenceClassification.from_pretrained(path, config=config)
    """

    config_class = PretrainedConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.num_labels = int(config.num_labels or 2)
        self.encoder = AutoModel.from_config(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(getattr(config, "classifier_dropout", 0.1))
        self.classifier = nn.Linear(config.hidden_size, self.num_labels)
        self.class_weights: torch.Tensor | None = None
        self.post_init()
        # No tensor-parallel plan: with an empty one, transformers 5 logs every
        # parameter as "not sharded" on each load.
        self._tp_plan = None

    def set_class_weights(self, weights: torch.Tensor | None) -> None:
        """Weight the training loss per class; not saved with the model."""
        self.class_weights = weights

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.classifier:
            nn.init.normal_(module.weight, std=getattr(self.config, "initializer_range", 0.02))
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Turn last hidden states (batch, seq, dim) into sentence vectors (batch, dim)."""
        if getattr(self.config, "pooling", "mean") == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = mean_pool(hidden, attention_mask)
        if getattr(self.config, "normalize_embeddings", False):
            pooled = F.normalize(pooled, p=2, dim=-1)
        return pooled

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        encoder_kwargs: dict[str, Any] = {}
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        if past_key_values is not None:
            # Prefix tuning: the prefixes enter every layer as a cache, and PEFT has
            # already prepended ones for them to `attention_mask`.
            encoder_kwargs["cache"] = past_key_values
            encoder_kwargs["use_cache"] = True
        outputs = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            **encoder_kwargs,
        )
        hidden = outputs.last_hidden_state  # (B, T, D)
        token_mask = self._token_mask(hidden, attention_mask)
        logits = self.classifier(self.dropout(self.pool(hidden, token_mask)))  # (B, C)
        loss = None
        if labels is not None:
            weights = None
            if self.class_weights is not None:
                weights = self.class_weights.to(device=logits.device, dtype=logits.dtype)
            loss = F.cross_entropy(
                logits.view(-1, self.num_labels), labels.view(-1), weight=weights
            )
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @staticmethod
    def _token_mask(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Return the mask of the input tokens, dropping any prefix columns PEFT added."""
        if attention_mask is None:
            return torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return attention_mask[:, -hidden.shape[1] :]


PREFIX_ADAPTER_DIR = "adapter"


def build_classifier(
    base_path: str | Path,
    *,
    label2id: dict[str, int],
    pooling: Pooling = "mean",
    normalize_embeddings: bool = False,
    classifier_dropout: float = 0.1,
) -> EncoderForSequenceClassification:
    """Build a classifier from a base encoder folder with a freshly initialised head."""
    config = prepare_classifier_config(
        AutoConfig.from_pretrained(str(base_path)),
        label2id=label2id,
        pooling=pooling,
        normalize_embeddings=normalize_embeddings,
        classifier_dropout=classifier_dropout,
    )
    with quiet_load_report():
        model = EncoderForSequenceClassification.from_pretrained(str(base_path), config=config)
    return model


def load_classifier(model_dir: str | Path) -> nn.Module:
    """Load a saved classifier folder for inference, with its prefix adapter if it has one.

    Args:
        model_dir: A folder written by the training code: config.json with
            ``architectures == ["EncoderForSequenceClassification"]`` and
            safetensors weights, plus ``adapter/`` for prefix-tuned models.

    Returns:
        The model in eval mode.

    Raises:
        ValueError: If the folder contains a different architecture.
    """
    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(str(model_dir))
    if ARCHITECTURE not in (getattr(config, "architectures", None) or []):
        raise ValueError(
            f"`model_dir` {str(model_dir)!r} contains {config.architectures!r}, not a Diptych "
            f"classifier ({ARCHITECTURE}); train it with `diptych train classifier`."
        )
    with quiet_load_report():
        model: nn.Module = EncoderForSequenceClassification.from_pretrained(
            str(model_dir), config=config
        )
    adapter_dir = model_dir / PREFIX_ADAPTER_DIR
    if (adapter_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    return model.eval()


@contextlib.contextmanager
def quiet_load_report() -> Iterator[None]:
    """Silence transformers' per-key load report; missing head weights are expected here."""
    hf_logger = logging.getLogger("transformers.modeling_utils")
    previous = hf_logger.level
    hf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logger.setLevel(previous)
