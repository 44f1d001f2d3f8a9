"""Fine-tune, save and evaluate a sequence classifier with any supported method.

`train_classifier` is the one entry point. It resolves the base model and
trains with the configured method. It then saves a self-contained folder
(safetensors, the tokenizer, the resolved config and the serving settings),
reloads that folder to evaluate it, and writes the report beside it. Evaluating the saved folder
rather than the in-memory model means the reported figures are the figures
of what gets registered and served.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.data import DatasetSplits, LabelledText
from shared.errors import DataError
from shared.evaluation import (
    ClassificationReport,
    choose_oos_threshold,
    evaluate_predictions,
    write_report,
)
from shared.inference.classifier import CLASSIFIER_SETTINGS_FILE, TextClassifier
from shared.inference.device import select_device
from shared.training._common import (
    build_label_map,
    compute_class_weights,
    encode_labels,
    load_tokenizer,
    resolve_base_path,
    tokenize_examples,
)
from shared.training._head import embed_texts, fit_head, install_head
from shared.training.config import ClassifierTrainingConfig
from shared.training.modeling import EncoderForSequenceClassification, build_classifier

__all__ = [
    "TRAINING_CONFIG_FILE",
    "TrainedClassifier",
    "evaluate_classifier_folder",
    "train_classifier",
]

logger = logging.getLogger(__name__)

TRAINING_CONFIG_FILE = "training_config.json"


@dataclass
class TrainedClassifier:
    """Paths, metrics and timings of one training run."""

    model_dir: Path
    report_dir: Path
    run_dir: Path
    label2id: dict[str, int]
    config: ClassifierTrainingConfig
    data_fingerprint: str
    train_seconds: float
    dev_report: ClassificationReport | None
    test_report: ClassificationReport | None
    oos_threshold: float | None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    model: torch.nn.Module | None = field(default=None, repr=False)
    """The trained model as it was in memory before saving (PEFT-wrapped for adapter methods)."""

    @property
    def headline_metrics(self) -> dict[str, Any]:
        """Accuracy, macro-F1 and ECE on test (else dev), plus the training time."""
        report = self.test_report or self.dev_report
        metrics: dict[str, Any] = {"train_seconds": round(self.train_seconds, 1)}
        if report is not None:
            split = "test" if self.test_report is not None else "dev"
            metrics.update(
                split=split,
                accuracy=report.accuracy,
                macro_f1=report.macro_f1,
                ece=report.ece,
                n_examples=report.n_examples,
            )
        if self.oos_threshold is not None:
            metrics["oos_threshold"] = self.oos_threshold
        return metrics


def train_classifier(
    splits: DatasetSplits,
    config: ClassifierTrainingConfig,
    *,
    output_dir: Path,
    max_false_rejection: float = 0.05,
    oos_label: str | None = None,
) -> TrainedClassifier:
    """Train a classifier, save it under ``output_dir/model`` and report on it.

    Args:
        splits: Train, dev and (optionally) test examples. The test split is
            only evaluated, never used to pick checkpoints or thresholds.
        config: Method and hyperparameters.
        output_dir: Run folder; receives ``model/``, ``report/`` and ``trainer/``.
        max_false_rejection: For the out-of-scope threshold when the dev split
            has no out-of-scope examples: the share of correct dev predictions
            the threshold may reject.
        oos_label: Name of the out-of-scope label, when the data has one.

    Returns:
        Paths, metrics and timings of the run.

    Raises:
        DataError: If the training split is empty or has fewer than two labels.
        TrainingError: If training cannot start.
    """
    if not splits.train:
        raise DataError("The training split is empty; check the data set and split fractions.")
    _warn_on_small_splits(splits)
    torch.manual_seed(config.seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_dir, report_dir, run_dir = (
        output_dir / "model",
        output_dir / "report",
        output_dir / "trainer",
    )
    base_path = resolve_base_path(config.base_model)
    label2id = build_label_map(splits)
    tokenizer = load_tokenizer(base_path)
    logger.info(
        "training started method=%s base=%s train=%d dev=%d labels=%d",
        config.method,
        config.base_model,
        len(splits.train),
        len(splits.dev),
        len(label2id),
    )

    started = time.perf_counter()
    trained_model, log_history = _train_into(
        model_dir,
        base_path=base_path,
        splits=splits,
        config=config,
        label2id=label2id,
        tokenizer=tokenizer,
        run_dir=run_dir,
    )
    train_seconds = time.perf_counter() - started
    _write_training_config(model_dir, config, splits)
    logger.info("training finished method=%s seconds=%.1f", config.method, train_seconds)

    result = _evaluate_run(
        splits,
        config=config,
        model_dir=model_dir,
        report_dir=report_dir,
        run_dir=run_dir,
        label2id=label2id,
        train_seconds=train_seconds,
        log_history=log_history,
        max_false_rejection=max_false_rejection,
        oos_label=oos_label,
    )
    result.model = trained_model.eval()
    return result


# Below this many examples a split's accuracy moves by more than 3 points per
# example, too coarse to pick checkpoints or thresholds or to compare runs.
_MIN_RELIABLE_SPLIT = 30


def _warn_on_small_splits(splits: DatasetSplits) -> None:
    for name, examples in (("dev", splits.dev), ("test", splits.test)):
        if 0 < len(examples) < _MIN_RELIABLE_SPLIT:
            logger.warning(
                "split %s has only %d examples: its figures are unreliable; "
                "add data or pass a larger split fraction",
                name,
                len(examples),
            )


def _train_into(
    model_dir: Path,
    *,
    base_path: Path,
    splits: DatasetSplits,
    config: ClassifierTrainingConfig,
    label2id: dict[str, int],
    tokenizer: Any,
    run_dir: Path,
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """Train with the configured method and save the model folder.

    Returns:
        The trained model as it is in memory (PEFT-wrapped for adapter methods)
        and the log history.
    """
    if model_dir.exists():
        shutil.rmtree(model_dir)
    if config.method in {"head", "contrastive"}:
        return _train_frozen_head(
            model_dir,
            base_path=base_path,
            splits=splits,
            config=config,
            label2id=label2id,
            tokenizer=tokenizer,
            run_dir=run_dir,
        )
    return _train_trainer_method(
        model_dir,
        base_path=base_path,
        splits=splits,
        config=config,
        label2id=label2id,
        tokenizer=tokenizer,
        run_dir=run_dir,
    )


def _train_frozen_head(
    model_dir: Path,
    *,
    base_path: Path,
    splits: DatasetSplits,
    config: ClassifierTrainingConfig,
    label2id: dict[str, int],
    tokenizer: Any,
    run_dir: Path,
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    body_path = base_path
    head_options = config.head
    if config.method == "contrastive":
        from shared.training._contrastive import train_contrastive_body

        head_options = config.contrastive.head
        body_path = train_contrastive_body(
            base_path,
            texts=[example.text for example in splits.train],
            labels=encode_labels(splits.train, label2id),
            options=config.contrastive,
            batch_size=config.batch_size,
            max_length=config.max_length,
            seed=config.seed,
            output_dir=run_dir / "body",
            tokenizer=tokenizer,
        )
    model = build_classifier(
        body_path, label2id=label2id, pooling=config.pooling, normalize_embeddings=True
    )
    model.to(select_device())  # type: ignore[arg-type]
    weight, bias, history = _fit_head_on(
        model, tokenizer, splits=splits, config=config, label2id=label2id, options=head_options
    )
    install_head(model, weight, bias)
    model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return model, history


def _fit_head_on(
    model: EncoderForSequenceClassification,
    tokenizer: Any,
    *,
    splits: DatasetSplits,
    config: ClassifierTrainingConfig,
    label2id: dict[str, int],
    options: Any,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    def embed(examples: list[LabelledText]) -> tuple[np.ndarray, np.ndarray]:
        vectors = embed_texts(
            model,
            tokenizer,
            [e.text for e in examples],
            batch_size=config.eval_batch_size,
            max_length=config.max_length,
        )
        return vectors, np.asarray(encode_labels(examples, label2id), dtype=np.int64)

    train_x, train_y = embed(splits.train)
    dev_x, dev_y = embed(splits.dev) if splits.dev else (train_x[:0], train_y[:0])
    return fit_head(
        train_x=train_x,
        train_y=train_y,
        dev_x=dev_x,
        dev_y=dev_y,
        num_labels=len(label2id),
        options=options,
        balanced=config.class_weights == "balanced",
        seed=config.seed,
    )


def _train_trainer_method(
    model_dir: Path,
    *,
    base_path: Path,
    splits: DatasetSplits,
    config: ClassifierTrainingConfig,
    label2id: dict[str, int],
    tokenizer: Any,
    run_dir: Path,
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    from shared.training._trainer import save_trained_model, train_with_trainer

    linear_probe = config.init_head == "logistic"
    model = build_classifier(
        base_path, label2id=label2id, pooling=config.pooling, normalize_embeddings=linear_probe
    )
    device = select_device()
    model.to(device)  # type: ignore[arg-type]
    history: list[dict[str, Any]] = []
    if linear_probe:
        weight, bias, history = _fit_head_on(
            model, tokenizer, splits=splits, config=config, label2id=label2id, options=config.head
        )
        install_head(model, weight, bias)
    if config.class_weights == "balanced":
        model.set_class_weights(
            compute_class_weights(encode_labels(splits.train, label2id), len(label2id))
        )
    train = tokenize_examples(
        splits.train, tokenizer=tokenizer, label2id=label2id, max_length=config.max_length
    )
    dev = (
        tokenize_examples(
            splits.dev, tokenizer=tokenizer, label2id=label2id, max_length=config.max_length
        )
        if splits.dev
        else None
    )
    run = train_with_trainer(
        model,
        tokenizer=tokenizer,
        train=train,
        dev=dev,
        config=config,
        run_dir=run_dir,
        use_cpu=device.type == "cpu",
    )
    save_trained_model(run, method=config.method, tokenizer=tokenizer, output_dir=model_dir)
    return run.model, history + run.log_history


def _write_training_config(
    model_dir: Path, config: ClassifierTrainingConfig, splits: DatasetSplits
) -> None:
    resolved = {
        "config": config.model_dump(mode="json"),
        "resolved_learning_rate": config.resolved_learning_rate,
        "data": {"fingerprint": splits.fingerprint(), **splits.summary()},
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    (model_dir / TRAINING_CONFIG_FILE).write_text(json.dumps(resolved, indent=2), encoding="utf-8")


def _write_serving_settings(
    model_dir: Path, *, config: ClassifierTrainingConfig, oos_threshold: float | None
) -> None:
    settings = {
        "max_length": config.max_length,
        "batch_size": config.eval_batch_size,
        "oos_threshold": oos_threshold,
    }
    (model_dir / CLASSIFIER_SETTINGS_FILE).write_text(
        json.dumps(settings, indent=2), encoding="utf-8"
    )


def _evaluate_run(
    splits: DatasetSplits,
    *,
    config: ClassifierTrainingConfig,
    model_dir: Path,
    report_dir: Path,
    run_dir: Path,
    label2id: dict[str, int],
    train_seconds: float,
    log_history: list[dict[str, Any]],
    max_false_rejection: float,
    oos_label: str | None,
) -> TrainedClassifier:
    _write_serving_settings(model_dir, config=config, oos_threshold=None)
    classifier = TextClassifier.from_folder(model_dir)
    labels = list(label2id)
    oos_index = label2id.get(oos_label) if oos_label else None

    dev_report, threshold = None, None
    if splits.dev:
        dev_probabilities = _probabilities(classifier, splits.dev)
        dev_y = encode_labels(splits.dev, label2id)
        choice = choose_oos_threshold(
            probabilities_dev=dev_probabilities,
            y_dev=dev_y,
            oos_index=oos_index,
            max_false_rejection=max_false_rejection,
        )
        threshold = float(choice.threshold)
        dev_report = evaluate_predictions(
            y_true=dev_y,
            probabilities=dev_probabilities,
            labels=labels,
            threshold=threshold,
            oos_label=oos_label,
        )
    _write_serving_settings(model_dir, config=config, oos_threshold=threshold)

    test_report = None
    if splits.test:
        test_report = evaluate_predictions(
            y_true=encode_labels(splits.test, label2id),
            probabilities=_probabilities(classifier, splits.test),
            labels=labels,
            threshold=threshold,
            oos_label=oos_label,
        )
    result = TrainedClassifier(
        model_dir=model_dir,
        report_dir=report_dir,
        run_dir=run_dir,
        label2id=label2id,
        config=config,
        data_fingerprint=splits.fingerprint(),
        train_seconds=train_seconds,
        dev_report=dev_report,
        test_report=test_report,
        oos_threshold=threshold,
        log_history=log_history,
    )
    _write_run_report(result)
    return result


def _probabilities(classifier: TextClassifier, examples: list[LabelledText]) -> np.ndarray:
    probabilities, _ = classifier.predict_proba([example.text for example in examples])
    return probabilities


def _write_run_report(result: TrainedClassifier) -> None:
    report = result.test_report or result.dev_report
    if report is None:
        return
    split = "test" if result.test_report is not None else "dev"
    extra = {
        "method": result.config.method,
        "base_model": result.config.base_model,
        "split": split,
        "train_seconds": round(result.train_seconds, 1),
        "data_fingerprint": result.data_fingerprint,
        "dev_accuracy": result.dev_report.accuracy if result.dev_report is not None else None,
        "dev_macro_f1": result.dev_report.macro_f1 if result.dev_report is not None else None,
    }
    if result.dev_report is not None:
        result.report_dir.mkdir(parents=True, exist_ok=True)
        (result.report_dir / "dev_report.json").write_text(
            result.dev_report.model_dump_json(indent=2), encoding="utf-8"
        )
    write_report(
        report,
        result.report_dir,
        title=f"{result.config.method} classifier on {result.config.base_model}, {split} split",
        extra=extra,
        log_history=result.log_history,
    )


def evaluate_classifier_folder(
    model_dir: Path, examples: list[LabelledText], *, oos_label: str | None = None
) -> ClassificationReport:
    """Evaluate a saved classifier on labelled examples, with its stored threshold."""
    classifier = TextClassifier.from_folder(model_dir)
    label2id = {label: index for index, label in enumerate(classifier.labels)}
    return evaluate_predictions(
        y_true=encode_labels(examples, label2id),
        probabilities=_probabilities(classifier, examples),
        labels=classifier.labels,
        threshold=classifier.oos_threshold,
        oos_label=oos_label,
    )
