"""`diptych recommend`: import data, fit, run batch jobs and evaluate the recommender."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pipelines._console import fail, make_console
from shared.errors import DiptychError
from shared.settings import get_settings
from shared.storage import ensure_database_ready

recommend_app = typer.Typer(
    help="Recommender: import items and interactions, fit, batch runs, offline evaluation.",
    no_args_is_help=True,
)
console = make_console()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@recommend_app.command("import")
def import_command(
    dataset: str = typer.Option(None, help="A named data set: `movielens` (ml-latest-small)."),
    items: Path = typer.Option(
        None,
        help="A CSV or JSONL file of items (item_id, title, optional tags, created_at and "
        "text fields). Ids are integers from 1 or strings such as sku-00123.",
    ),
    interactions: Path = typer.Option(
        None,
        help="A CSV or JSONL file of interactions (user_id, item_id, time, optional kind "
        "and value).",
    ),
) -> None:
    """Import items and interactions; a repeated item id updates the stored item."""
    from services.recommender import store
    from services.recommender.catalogue import (
        InteractionRecord,
        ItemRecord,
        read_interaction_file,
        read_item_file,
    )

    if dataset is None and items is None and interactions is None:
        raise fail("pass --dataset movielens, or --items and/or --interactions files.")
    if dataset is not None and dataset != "movielens":
        raise fail(f"--dataset {dataset!r} is not known; the one data set is `movielens`.")
    try:
        ensure_database_ready()
        item_records: list[ItemRecord] = []
        interaction_records: list[InteractionRecord] = []
        if dataset == "movielens":
            from pipelines.datasets import read_movielens

            item_records, interaction_records = read_movielens()
        if items is not None:
            item_records += read_item_file(items)
        if interactions is not None:
            interaction_records += read_interaction_file(interactions)
        item_counts = store.import_items(item_records)
        interaction_counts = store.import_interactions(interaction_records)
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(
        f"Items added: {item_counts.added}, updated: {item_counts.updated}, unchanged: "
        f"{item_counts.unchanged}. Interactions added: {interaction_counts.added}, "
        f"skipped: {interaction_counts.skipped}.",
        markup=False,
    )
    for problem in interaction_counts.problems:
        console.print(f"  skipped {problem}", markup=False)
    if _has_fitted_model() and (item_counts.added or item_counts.updated):
        console.print(
            "The fitted recommender does not contain these item changes yet; run "
            "`diptych recommend fit` to embed new and changed items.",
            markup=False,
        )


def _has_fitted_model() -> bool:
    from services.recommender.serving import model_folder

    return (model_folder() / "model.json").is_file()


@recommend_app.command("train-ranker")
def train_ranker_command(
    promote: bool = typer.Option(True, help="Promote the new version to production."),
) -> None:
    """Fine-tune the ranker on stored behaviour and register it in the model registry."""
    from services.recommender import store
    from services.recommender.ranker import fine_tune_ranker
    from shared.basemodels import default_encoder
    from shared.registry import promote_version, register_model

    settings = get_settings()
    try:
        ensure_database_ready()
        catalogue = store.load_catalogue()
        log = store.load_interaction_log(
            like_threshold=settings.recommender.like_threshold,
            dislike_threshold=settings.recommender.dislike_threshold,
        )
        output = settings.runs_dir / "recommender-ranker"
        trained = fine_tune_ranker(
            log, catalogue, settings=settings.recommender, output_dir=output, seed=settings.seed
        )
        if trained is None:
            raise fail("too few (item, next item) pairs of likes to fine-tune the ranker.")
        row = register_model(
            name=settings.recommender.ranker_model,
            task="sentence-embedding",
            model_dir=trained.model_dir,
            base_model=default_encoder().name,
            method="multiple-negatives-ranking",
            metrics={"pairs": trained.pairs, "train_seconds": round(trained.seconds, 1)},
        )
        if promote:
            promote_version(row.reference)
    except DiptychError as exc:
        raise fail(exc) from None
    console.print(
        f"Ranker {row.reference} trained on {trained.pairs} pairs in {trained.seconds:.0f} s"
        + (" and promoted." if promote else "."),
        markup=False,
    )


@recommend_app.command("fit")
def fit_command() -> None:
    """Embed the catalogue, build the item index and learn the final ordering's weights."""
    from services.recommender.serving import FIT_STAGES, fit_from_database

    try:
        ensure_database_ready()
        with _progress() as progress:
            tasks: dict[str, TaskID] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(FIT_STAGES[stage], total=total)
                progress.update(tasks[stage], completed=done, total=total)

            summary = fit_from_database(progress=report)
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    console.print(
        f"Fitted {summary.items} items, {summary.users} users, {summary.interactions} "
        f"interactions; index {summary.index_kind}; ranker {summary.ranker or 'base encoder'}. "
        f"Saved to {summary.folder}.",
        markup=False,
    )


@recommend_app.command("batch")
def batch_command(
    top_n: int = typer.Option(None, "--top-n", min=1, max=500, help="Items per user."),
    run_id: str = typer.Option(None, "--run-id", help="Run to start or resume; default new."),
    chunk_size: int = typer.Option(None, min=1, help="Users per task (default: settings)."),
    timeout: float = typer.Option(
        None, help="Seconds to wait for workers before returning (default: until done)."
    ),
) -> None:
    """Write every user's top-N list under a run id, in chunks of users."""
    from services.recommender.batch import run_batch

    settings = get_settings().recommender
    try:
        ensure_database_ready()
        with _progress() as progress:
            task = progress.add_task("users", total=None)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = run_batch(
                top_n=top_n or settings.top_n,
                run_id=run_id,
                chunk_size=chunk_size or settings.chunk_size,
                progress=report,
                timeout_s=timeout,
            )
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    state = "finished" if summary.is_finished else "not finished (resume with --run-id)"
    console.print(
        f"Run {summary.run_id}: {summary.users} users, {summary.written_before} written "
        f"before this call, {state}, {summary.seconds:.1f} s.",
        markup=False,
    )


@recommend_app.command("evaluate")
def evaluate_command(
    test_size: int = typer.Option(10, min=1, help="Last interactions per user held out."),
    ranker: bool = typer.Option(True, help="Fine-tune the ranker per time bucket."),
    plot: Path = typer.Option(
        Path("recommender-evaluation.png"), help="Where to write the bar chart (PNG)."
    ),
    output: Path = typer.Option(None, help="Also write the metrics as JSON here."),
) -> None:
    """Compare popularity, item-kNN, text profile and the hybrid on MovieLens."""
    from pipelines.datasets import read_movielens
    from services.recommender.catalogue import build_interaction_log
    from services.recommender.evaluation import evaluate_methods
    from services.recommender.plots import plot_metrics
    from shared.retrieval import load_text_embedder

    settings = get_settings()
    try:
        items, ratings = read_movielens()
        log = build_interaction_log(
            ratings,
            like_threshold=settings.recommender.like_threshold,
            dislike_threshold=settings.recommender.dislike_threshold,
        )
        with _progress() as progress:
            task = progress.add_task("time buckets", total=settings.recommender.time_buckets)
            result = evaluate_methods(
                items,
                log,
                embedder=load_text_embedder(None),
                settings=settings.recommender,
                test_size=test_size,
                train_ranker=ranker,
                seed=settings.seed,
                progress=lambda _: progress.advance(task),
            )
    except (DiptychError, ValueError) as exc:
        raise fail(exc) from None
    table = Table(title=f"MovieLens temporal split, {result.users} users")
    for column in ("method", "Recall@10", "Recall@20", "NDCG@10", "coverage", "novelty"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, values in result.metrics.items():
        table.add_row(method, *(f"{values[key]:.4f}" for key in values))
    console.print(table)
    console.print(
        f"Ranker fine-tuning: {result.ranker_pairs} pairs, {result.ranker_seconds:.0f} s; "
        f"evaluation {result.seconds:.0f} s.",
        markup=False,
    )
    plot_metrics(result.metrics, plot)
    console.print(f"Plot written to {plot}.", markup=False)
    if output is not None:
        output.write_text(json.dumps({"metrics": result.metrics, "users": result.users}, indent=2))
