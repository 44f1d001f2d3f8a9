"""The `diptych train mlm` job: collect texts, adapt the encoder, register it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pipelines.jobs import timestamped_run_dir
from shared.data import text_hash
from shared.errors import ConfigurationError
from shared.registry import register_model
from shared.storage import ensure_database_ready
from shared.training.config import MlmTrainingConfig
from shared.training.mlm import train_mlm

__all__ = ["run_mlm_job"]


def run_mlm_job(
    *,
    corpus: str | None,
    text_file: Path | None,
    text_column: str,
    exclude_dataset: str | None,
    config: MlmTrainingConfig,
    name: str | None,
    output_dir: Path | None,
    console: Console,
) -> None:
    """Adapt an encoder to a corpus and register it as task ``encoder``.

    Raises:
        ConfigurationError: If neither or both of `corpus` and `text_file` are given.
    """
    texts = _collect_texts(
        corpus,
        text_file,
        text_column=text_column,
        exclude_dataset=exclude_dataset,
        seed=config.seed,
    )
    source = corpus if corpus is not None else Path(str(text_file)).stem
    registry_name = name or f"{source}-mlm"
    result = train_mlm(texts, config, output_dir=output_dir or timestamped_run_dir(registry_name))
    ensure_database_ready()
    version = register_model(
        name=registry_name,
        task="encoder",
        model_dir=result.model_dir,
        base_model=config.base_model,
        method="mlm",
        metrics={
            "perplexity_before": result.perplexity_before,
            "perplexity_after": result.perplexity_after,
            "train_seconds": round(result.train_seconds, 1),
            "n_texts": result.n_texts,
        },
        extra_manifest={
            "config": config.model_dump(mode="json"),
            "excluded_test_split_of": exclude_dataset,
        },
    )
    console.print(
        f"Held-out perplexity {result.perplexity_before:.2f} -> {result.perplexity_after:.2f} "
        f"on {result.n_texts} texts in {result.train_seconds:.0f} s."
        if result.perplexity_before is not None and result.perplexity_after is not None
        else f"Adapted on {result.n_texts} texts in {result.train_seconds:.0f} s."
    )
    console.print(
        f"Registered as [bold]{version.reference}[/bold]; train on it with "
        f"`--base-model registry:{version.reference}`."
    )


def _collect_texts(
    corpus: str | None,
    text_file: Path | None,
    *,
    text_column: str,
    exclude_dataset: str | None,
    seed: int,
) -> list[str]:
    from pipelines.datasets import load_dataset_splits, read_table, read_unlabelled_texts

    if (corpus is None) == (text_file is None):
        raise ConfigurationError("Pass exactly one of `--corpus` or `--text-file`.")
    exclude: list[str] = []
    if exclude_dataset:
        splits = load_dataset_splits(exclude_dataset, seed=seed)
        exclude = [example.text for example in [*splits.test, *splits.dev]]
    if corpus is not None:
        return read_unlabelled_texts(corpus, exclude=exclude)
    assert text_file is not None
    # The reader wants a label column; the text column serves, as labels are unused here.
    rows = read_table(text_file, text_column=text_column, label_column=text_column)
    excluded = {text_hash(text) for text in exclude}
    return [row.text for row in rows if text_hash(row.text) not in excluded]
