"""Inputs shared by every demo stage: the data folder, the options and the console."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from pipelines.datasets import load_dataset_splits
from pipelines.demo.summary import BenchmarkFigure, Figure
from pipelines.jobs import ClassifierJob, ClassifierJobResult, run_classifier_job
from pipelines.sampling import sample_training_split
from shared.data import DatasetSplits
from shared.settings import get_settings
from shared.training.config import ClassifierTrainingConfig

__all__ = ["DemoContext", "classifier_figures", "load_demo_splits", "train_demo_classifier"]


@dataclass(frozen=True)
class DemoContext:
    """The demo's inputs, shared by its stages."""

    data_dir: Path
    output_dir: Path
    console: Console
    method: str = "head"
    sample: int = 0
    tickets: int = 8
    stream_items: int = 3000

    @property
    def sampled(self) -> bool:
        """Whether stages use a sample of each training split, so figures differ from benchmarks."""
        return self.sample > 0


def load_demo_splits(context: DemoContext, dataset: str) -> DatasetSplits:
    """Load a data set's seeded splits, keeping `context.sample` training examples if set.

    The sample keeps every label; dev and test stay whole.
    """
    seed = get_settings().seed
    splits = load_dataset_splits(dataset, data_dir=context.data_dir, seed=seed)
    if not context.sample:
        return splits
    return sample_training_split(splits, context.sample, seed=seed)


def train_demo_classifier(
    context: DemoContext, splits: DatasetSplits, *, name: str, dataset: str
) -> ClassifierJobResult:
    """Fine-tune, evaluate on the test split, register and promote one classifier."""
    settings = get_settings()
    context.console.print(f"{dataset} splits: {splits.summary()}", markup=False)
    config = ClassifierTrainingConfig.model_validate(
        {"method": context.method, "base_model": settings.models.encoder, "seed": settings.seed}
    )
    return run_classifier_job(
        ClassifierJob(splits=splits, config=config, name=name, dataset=dataset, promote=True)
    )


def classifier_figures(
    context: DemoContext,
    result: ClassifierJobResult,
    *,
    label: str,
    test_split: str,
    benchmark_result: str,
    benchmark_row: str,
) -> list[Figure]:
    """Return test accuracy and macro-F1, beside the benchmark row when it used the same method.

    Args:
        context: The demo's inputs; the benchmark rows were recorded with `head`.
        result: The trained classifier with its test report.
        label: What the classifier predicts, e.g. "intent".
        test_split: The test split it is measured on, e.g. "Bitext test".
        benchmark_result: Results file of the benchmark row, e.g. "support".
        benchmark_row: Name of the benchmark row, e.g. "intent-head".
    """
    report = result.trained.test_report
    if report is None:
        return []
    compare = context.method == "head"
    return [
        Figure(
            f"{label} accuracy ({test_split})",
            round(report.accuracy, 4),
            BenchmarkFigure(benchmark_result, benchmark_row, "accuracy") if compare else None,
        ),
        Figure(
            f"{label} macro-F1",
            round(report.macro_f1, 4),
            BenchmarkFigure(benchmark_result, benchmark_row, "macro_f1") if compare else None,
        ),
    ]
