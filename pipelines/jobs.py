"""Training jobs the CLI and the demo run: data in, registered model out."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from shared.data import DatasetSplits
from shared.registry import ModelVersion, promote_version, register_model
from shared.settings import get_settings
from shared.storage import ensure_database_ready
from shared.training.classifier import TRAINING_CONFIG_FILE, TrainedClassifier, train_classifier
from shared.training.config import ClassifierTrainingConfig

__all__ = ["ClassifierJob", "ClassifierJobResult", "run_classifier_job", "timestamped_run_dir"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierJob:
    """One classifier training job: which data, which config, where it goes."""

    splits: DatasetSplits
    config: ClassifierTrainingConfig
    name: str
    dataset: str
    register: bool = True
    promote: bool = False
    output_dir: Path | None = None


@dataclass(frozen=True)
class ClassifierJobResult:
    """The trained classifier and, when registered, its registry row."""

    trained: TrainedClassifier
    version: ModelVersion | None


def timestamped_run_dir(name: str) -> Path:
    """Return ``<home>/runs/<name>-<UTC timestamp>`` (not created)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return get_settings().runs_dir / f"{name}-{stamp}"


def run_classifier_job(job: ClassifierJob) -> ClassifierJobResult:
    """Train, evaluate and (optionally) register and promote a classifier."""
    output_dir = job.output_dir or timestamped_run_dir(job.name)
    trained = train_classifier(job.splits, job.config, output_dir=output_dir)
    if not job.register:
        return ClassifierJobResult(trained=trained, version=None)
    ensure_database_ready()
    version = register_model(
        name=job.name,
        task="sequence-classification",
        model_dir=trained.model_dir,
        base_model=job.config.base_model,
        method=job.config.method,
        label_map=trained.label2id,
        data_fingerprint=trained.data_fingerprint,
        metrics=trained.headline_metrics,
        report_dir=trained.report_dir,
        extra_manifest={"dataset": job.dataset, "training_config_file": TRAINING_CONFIG_FILE},
    )
    if job.promote:
        version = promote_version(version.reference)
    return ClassifierJobResult(trained=trained, version=version)
