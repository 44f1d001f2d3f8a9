"""`diptych train`: fine-tune classifiers and continue encoder pretraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from pipelines._console import describe_validation_error, fail, make_console
from shared.data import DatasetSplits
from shared.errors import DiptychError
from shared.training.config import (
    METHODS,
    ClassifierTrainingConfig,
    MlmTrainingConfig,
    load_config_file,
)

train_app = typer.Typer(help="Fine-tune classifiers and adapt encoders.", no_args_is_help=True)
console = make_console()


@train_app.command("classifier")
def train_classifier_command(
    dataset: str = typer.Option(
        None, help="Named data set: banking77, bitext, phrasebank, sentfin or fiqa."
    ),
    train_file: Path = typer.Option(
        None, help="Your own CSV, TSV or JSONL file instead of --dataset."
    ),
    test_file: Path = typer.Option(
        None, help="A test file in the same format as --train-file (optional)."
    ),
    text_column: str = typer.Option(
        "text", help="Column or JSON key holding the text (with --train-file)."
    ),
    label_column: str = typer.Option(
        "label", help="Column or JSON key holding the label (with --train-file)."
    ),
    method: str = typer.Option(
        None, help=f"Fine-tuning method: {', '.join(METHODS)} (default: head)."
    ),
    config: Path = typer.Option(
        None, help="YAML experiment file; command-line options override it."
    ),
    name: str = typer.Option(None, help="Registry name (default: <dataset>-<method>)."),
    base_model: str = typer.Option(
        None, help="Base encoder: folder, bundled:<package>, hub name or registry:<name>[@version]."
    ),
    epochs: float = typer.Option(None, help="Training epochs."),
    learning_rate: float = typer.Option(None, help="Peak learning rate."),
    batch_size: int = typer.Option(None, help="Training batch size."),
    max_length: int = typer.Option(None, help="Maximum tokens per text."),
    class_weights: str = typer.Option(
        None, help="`balanced` weights the loss by inverse class frequency; `none` does not."
    ),
    init_head: str = typer.Option(
        None,
        help="`logistic` fits a head on frozen embeddings before fine-tuning; `random` does not.",
    ),
    seed: int = typer.Option(
        None, help="Random seed for the split and training (default: DIPTYCH_SEED or 42)."
    ),
    agreement: str = typer.Option(None, help="PhraseBank agreement level: 50, 66, 75 or All."),
    sample: int = typer.Option(
        0, help="Keep only this many training texts (0 = all), for quick runs."
    ),
    register: bool = typer.Option(
        True, help="Register the trained model as a new candidate version."
    ),
    promote: bool = typer.Option(False, help="Promote the new version to production."),
    output_dir: Path = typer.Option(
        None, help="Run folder (default: <DIPTYCH_HOME>/runs/<name>-<time>)."
    ),
) -> None:
    """Fine-tune a sequence classifier, evaluate it and register it."""
    from pipelines.jobs import ClassifierJob, run_classifier_job
    from pipelines.report import print_classifier_result

    overrides: dict[str, Any] = {
        "method": method,
        "base_model": base_model,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_length": max_length,
        "class_weights": class_weights,
        "init_head": init_head,
        "seed": seed,
    }
    try:
        training_config = _build_config(config, overrides)
        splits = _load_splits(
            dataset,
            train_file,
            test_file,
            text_column=text_column,
            label_column=label_column,
            seed=training_config.seed,
            agreement=agreement,
            sample=sample,
        )
        source = dataset or str(train_file)
        job = ClassifierJob(
            splits=splits,
            config=training_config,
            name=name or f"{Path(source).stem}-{training_config.method}",
            dataset=source,
            register=register,
            promote=promote,
            output_dir=output_dir,
        )
        result = run_classifier_job(job)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    print_classifier_result(console, result)


def _build_config(path: Path | None, overrides: dict[str, Any]) -> ClassifierTrainingConfig:
    if path is not None:
        loaded = load_config_file(path, ClassifierTrainingConfig, **overrides)
        assert isinstance(loaded, ClassifierTrainingConfig)
        return loaded
    from shared.settings import get_settings

    values = {key: value for key, value in overrides.items() if value is not None}
    values.setdefault("seed", get_settings().seed)
    values.setdefault("base_model", get_settings().models.encoder)
    try:
        return ClassifierTrainingConfig.model_validate(values)
    except ValidationError as exc:
        from shared.errors import ConfigurationError

        raise ConfigurationError(describe_validation_error(exc)) from None


def _load_splits(
    dataset: str | None,
    train_file: Path | None,
    test_file: Path | None,
    *,
    text_column: str,
    label_column: str,
    seed: int,
    agreement: str | None,
    sample: int,
) -> DatasetSplits:
    from pipelines.datasets import load_dataset_splits, load_table_splits
    from pipelines.sampling import sample_training_split
    from shared.errors import ConfigurationError

    if (dataset is None) == (train_file is None):
        raise ConfigurationError("Pass exactly one of `--dataset` or `--train-file`.")
    if dataset is not None:
        options: dict[str, Any] = {"agreement": agreement} if agreement else {}
        splits = load_dataset_splits(dataset, seed=seed, **options)
    else:
        assert train_file is not None
        splits = load_table_splits(
            train_file,
            text_column=text_column,
            label_column=label_column,
            test_path=test_file,
            seed=seed,
        )
    return sample_training_split(splits, sample, seed=seed) if sample else splits


@train_app.command("mlm")
def train_mlm_command(
    corpus: str = typer.Option(None, help="Named unlabelled corpus: financial or support."),
    text_file: Path = typer.Option(
        None, help="Your own CSV, TSV or JSONL file of texts instead of --corpus."
    ),
    text_column: str = typer.Option(
        "text", help="Column or JSON key holding the text (with --text-file)."
    ),
    exclude_dataset: str = typer.Option(
        None,
        help=(
            "Drop the texts of this data set's dev and test splits, e.g. phrasebank, "
            "so they never leak into evaluation."
        ),
    ),
    config: Path = typer.Option(
        None, help="YAML experiment file; command-line options override it."
    ),
    name: str = typer.Option(
        None, help="Registry name of the adapted encoder (default: <corpus>-mlm)."
    ),
    base_model: str = typer.Option(None, help="Encoder to adapt."),
    epochs: float = typer.Option(None, help="Passes over the texts."),
    learning_rate: float = typer.Option(None, help="Peak learning rate."),
    max_length: int = typer.Option(None, help="Maximum tokens per text."),
    seed: int = typer.Option(None, help="Random seed."),
    output_dir: Path = typer.Option(
        None, help="Run folder (default: <DIPTYCH_HOME>/runs/<name>-<time>)."
    ),
) -> None:
    """Continue an encoder's masked-LM pretraining on in-domain text and register it."""
    from pipelines.mlm_job import run_mlm_job

    overrides = {
        "base_model": base_model,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "max_length": max_length,
        "seed": seed,
    }
    try:
        if config is not None:
            mlm_config = load_config_file(config, MlmTrainingConfig, **overrides)
        else:
            mlm_config = MlmTrainingConfig.model_validate(
                {k: v for k, v in overrides.items() if v is not None}
            )
        assert isinstance(mlm_config, MlmTrainingConfig)
        run_mlm_job(
            corpus=corpus,
            text_file=text_file,
            text_column=text_column,
            exclude_dataset=exclude_dataset,
            config=mlm_config,
            name=name,
            output_dir=output_dir,
            console=console,
        )
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None


@train_app.command("drafter")
def train_drafter_command(
    dataset: str = typer.Option(
        None, help="Named data set with reference replies: bitext (its training split)."
    ),
    train_file: Path = typer.Option(
        None, help="replies.jsonl from `diptych support export-feedback` instead of --dataset."
    ),
    config: Path = typer.Option(
        None, help="YAML experiment file; command-line options override it."
    ),
    name: str = typer.Option("support-drafter", help="Registry name."),
    base_model: str = typer.Option(None, help="Causal LM to fine-tune (default: the drafter)."),
    epochs: float = typer.Option(None, help="Passes over the examples."),
    learning_rate: float = typer.Option(None, help="Peak learning rate."),
    max_length: int = typer.Option(None, help="Maximum tokens of prompt plus reply."),
    sample: int = typer.Option(0, help="Keep only this many examples (0 = all)."),
    seed: int = typer.Option(None, help="Random seed."),
    promote: bool = typer.Option(False, help="Promote the new version to production."),
    output_dir: Path = typer.Option(
        None, help="Run folder (default: <DIPTYCH_HOME>/runs/<name>-<time>)."
    ),
) -> None:
    """Fine-tune the reply drafter (LoRA on the causal LM) and register it."""
    from pipelines.drafter_job import DrafterJob, read_reply_file, run_drafter_job
    from shared.settings import get_settings
    from shared.training.causal_lm import CausalLmSftConfig

    overrides = {
        "base_model": base_model or get_settings().models.drafter,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "max_length": max_length,
        "seed": seed,
    }
    if (dataset is None) == (train_file is None):
        raise fail("pass exactly one of --dataset and --train-file.")
    try:
        if config is not None:
            sft_config = load_config_file(config, CausalLmSftConfig, **overrides)
        else:
            sft_config = CausalLmSftConfig.model_validate(
                {k: v for k, v in overrides.items() if v is not None}
            )
        assert isinstance(sft_config, CausalLmSftConfig)
        if train_file is not None:
            examples = read_reply_file(train_file)
        else:
            from pipelines.datasets import load_dataset_splits

            examples = load_dataset_splits(dataset, seed=get_settings().seed).train
        if sample:
            examples = examples[:sample]
        result = run_drafter_job(
            DrafterJob(
                examples=examples,
                config=sft_config,
                name=name,
                promote=promote,
                output_dir=output_dir,
            )
        )
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    console.print(
        f"Registered {result.reference}: {result.n_train} examples, train loss "
        f"{result.train_loss}, eval loss {result.eval_loss}, {result.seconds:.0f} s.",
        markup=False,
    )
