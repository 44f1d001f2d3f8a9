"""The main job: fine-tune and evaluate an intent classifier on real data.

Runs on the embedded defaults (SQLite and the registry under DIPTYCH_HOME,
tasks in-process) with the data sets under DIPTYCH_DATA_DIR.
"""

from __future__ import annotations

import shlex
import sys
import time

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape

from pipelines.datasets import load_dataset_splits, resolve_data_dir
from pipelines.jobs import ClassifierJob, run_classifier_job
from pipelines.report import print_classifier_result
from pipelines.sampling import sample_training_split
from shared.errors import DatasetNotFoundError
from shared.evaluation import render_markdown
from shared.settings import get_settings
from shared.storage import upgrade_database
from shared.training.config import ClassifierTrainingConfig

__all__ = ["INTENT_MODEL_NAME", "run_demo"]

INTENT_MODEL_NAME = "banking77-intent"


def run_demo(*, method: str = "head", sample: int = 0) -> None:
    """Train, evaluate, register and promote a Banking77 intent model, printing the report."""
    console = Console()
    settings = get_settings()
    try:
        data_dir = resolve_data_dir()
    except DatasetNotFoundError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise SystemExit(2) from None
    console.rule("Diptych demo: Banking77 intent classifier")
    console.print(
        f"Data: {data_dir}   Home: {settings.home.resolve()}   Method: {method}", markup=False
    )
    upgrade_database()

    started = time.perf_counter()
    splits = load_dataset_splits("banking77", data_dir=data_dir, seed=settings.seed)
    if sample:
        splits = sample_training_split(splits, sample, seed=settings.seed)
    console.print(f"Splits: {splits.summary()}")
    config = ClassifierTrainingConfig.model_validate(
        {"method": method, "base_model": settings.models.encoder, "seed": settings.seed}
    )
    result = run_classifier_job(
        ClassifierJob(
            splits=splits, config=config, name=INTENT_MODEL_NAME, dataset="banking77", promote=True
        )
    )

    report = result.trained.test_report
    if report is not None:
        console.print(Markdown(render_markdown(report, title="Banking77 test split")))
    print_classifier_result(console, result)
    console.print(f"Demo finished in {time.perf_counter() - started:.0f} s.")
    executable = shlex.quote(sys.argv[0]) if sys.argv[0].endswith("diptych") else "diptych"
    hint = f'{executable} predict --model {INTENT_MODEL_NAME} "My card has not arrived yet"'
    console.print(f"Try it: {hint}", markup=False, soft_wrap=True)
