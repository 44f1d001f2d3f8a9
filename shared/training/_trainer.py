"""Methods trained with transformers' Trainer: `full`, `lora`, `adalora`, `prefix`."""

from __future__ import annotations

import copy
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import (
    AdaLoraConfig,
    LoraConfig,
    PeftConfig,
    PeftModel,
    PrefixTuningConfig,
    TaskType,
    get_peft_model,
)
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from shared.training._common import compute_classification_metrics
from shared.training.config import ClassifierTrainingConfig
from shared.training.modeling import PREFIX_ADAPTER_DIR, EncoderForSequenceClassification

__all__ = ["TrainerRun", "train_with_trainer"]

logger = logging.getLogger(__name__)


class AdaLoraBudgetCallback(TrainerCallback):
    """Reallocate AdaLoRA's rank budget after every optimiser step.

    PEFT leaves this call to the training loop (`update_and_allocate` reads
    the gradients, so it must run after `optimizer.step()` and before
    `zero_grad()`, which is when Trainer fires `on_optimizer_step`).
    """

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs["model"]
        model.base_model.update_and_allocate(state.global_step)


class TrainerRun:
    """Result of a Trainer-based run: the model to save and its log history."""

    def __init__(
        self, model: torch.nn.Module, log_history: list[dict[str, Any]], peft_method: bool
    ) -> None:
        self.model = model
        self.log_history = log_history
        self.peft_method = peft_method


def _build_peft_config(config: ClassifierTrainingConfig, total_steps: int) -> PeftConfig | None:
    if config.method == "lora":
        options = config.lora
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=options.r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=options.target_modules,
            modules_to_save=["classifier"],
        )
    if config.method == "adalora":
        ada = config.adalora
        return AdaLoraConfig(
            task_type=TaskType.SEQ_CLS,
            init_r=ada.init_r,
            target_r=ada.target_r,
            lora_alpha=ada.alpha,
            lora_dropout=ada.dropout,
            tinit=int(total_steps * ada.tinit_fraction),
            tfinal=int(total_steps * ada.tfinal_fraction),
            deltaT=ada.delta_t,
            orth_reg_weight=ada.orth_reg_weight,
            total_step=total_steps,
            target_modules=ada.target_modules,
            modules_to_save=["classifier"],
        )
    if config.method == "prefix":
        return PrefixTuningConfig(
            task_type=TaskType.SEQ_CLS,
            num_virtual_tokens=config.prefix.num_virtual_tokens,
            prefix_projection=config.prefix.prefix_projection,
        )
    return None


def _selects_best_checkpoint(config: ClassifierTrainingConfig, *, has_dev: bool) -> bool:
    """Return whether the dev split picks the kept checkpoint (and may stop training early).

    Not for AdaLoRA: its saved adapters are cut to the rank pattern of the
    moment, so an earlier checkpoint no longer fits the final model's shapes,
    and its budget schedule assumes the run goes to the last step.
    """
    return has_dev and config.method != "adalora"


def _training_arguments(
    config: ClassifierTrainingConfig, run_dir: Path, *, has_dev: bool, use_cpu: bool
) -> TrainingArguments:
    evaluation = "epoch" if has_dev else "no"
    return TrainingArguments(
        output_dir=str(run_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.resolved_learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type="linear",
        eval_strategy=evaluation,
        save_strategy=evaluation,
        save_only_model=True,
        save_total_limit=2,
        load_best_model_at_end=_selects_best_checkpoint(config, has_dev=has_dev),
        metric_for_best_model=f"eval_{config.metric_for_best_model}" if has_dev else None,
        greater_is_better=config.metric_for_best_model != "loss",
        logging_steps=25,
        report_to=["tensorboard"],
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def train_with_trainer(
    model: EncoderForSequenceClassification,
    *,
    tokenizer: PreTrainedTokenizerBase,
    train: Dataset,
    dev: Dataset | None,
    config: ClassifierTrainingConfig,
    run_dir: Path,
    use_cpu: bool,
) -> TrainerRun:
    """Fine-tune `model` with Trainer using the configured method.

    Returns:
        The trained model (PEFT-wrapped for adapter methods) and the log history.
    """
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    peft_config = _build_peft_config(config, total_steps)
    trained: torch.nn.Module = model
    if peft_config is not None:
        trained = get_peft_model(model, peft_config)
    callbacks: list[TrainerCallback] = []
    if config.method == "adalora":
        callbacks.append(AdaLoraBudgetCallback())
    if _selects_best_checkpoint(config, has_dev=dev is not None) and config.early_stopping_patience:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)
        )
    trainer = Trainer(
        model=trained,
        args=_training_arguments(config, run_dir, has_dev=dev is not None, use_cpu=use_cpu),
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
        callbacks=callbacks,
    )
    with warnings.catch_warnings():
        # AdaLoRA prunes some matrices to rank 0 by design; PEFT's checkpoint save
        # reads those zero-sized tensors as an unsharded ZeRO-3 state and warns.
        warnings.filterwarnings(
            "ignore", message=r"Adapter .* have invalid shape", category=UserWarning
        )
        trainer.train()
    assert trainer.model is not None
    return TrainerRun(trainer.model, list(trainer.state.log_history), peft_config is not None)


def save_trained_model(
    run: TrainerRun,
    *,
    method: str,
    tokenizer: PreTrainedTokenizerBase,
    output_dir: Path,
) -> None:
    """Save a self-contained classifier folder (safetensors only).

    LoRA and AdaLoRA updates are merged into the weights, so the folder loads
    without PEFT and runs at the base model's speed. Prefix tuning cannot be
    merged: the folder contains the base encoder with the trained head, and the
    prefixes in ``adapter/``.
    """
    model: Any = run.model
    if isinstance(model, PeftModel) and method in {"lora", "adalora"}:
        # Merge a copy: merging rewrites the modules in place, and the caller
        # keeps the trained adapter model to compare against the saved folder.
        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(str(output_dir))
    elif isinstance(model, PeftModel):
        model.save_pretrained(str(output_dir / PREFIX_ADAPTER_DIR))
        base: Any = model.get_base_model()
        _strip_modules_to_save(base, model)
        base.save_pretrained(str(output_dir))
    else:
        model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))


def _strip_modules_to_save(base: torch.nn.Module, peft_model: PeftModel) -> None:
    """Replace PEFT's wrapper around the head with the trained copy before saving."""
    wrapper = getattr(base, "classifier", None)
    trained = getattr(wrapper, "modules_to_save", None)
    if trained is not None:
        base.classifier = trained[peft_model.active_adapter]
