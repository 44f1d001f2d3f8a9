"""Demo stage: the recommender on MovieLens, from offline evaluation to a nightly-style batch."""

from __future__ import annotations

import time

from rich.progress import Progress
from sqlalchemy import func, select

from pipelines.datasets import read_movielens
from pipelines.demo.context import DemoContext
from pipelines.demo.summary import BenchmarkFigure, Figure, StageReport
from services.recommender import store
from services.recommender.batch import run_batch
from services.recommender.catalogue import build_interaction_log
from services.recommender.evaluation import evaluate_methods
from services.recommender.models import RecommendationRow
from services.recommender.plots import plot_metrics
from services.recommender.serving import fit_from_database
from shared.retrieval import load_text_embedder
from shared.settings import RecommenderSettings, get_settings
from shared.storage import session_scope

__all__ = ["run_recommender_stage"]


def run_recommender_stage(context: DemoContext) -> StageReport:
    """Import MovieLens, compare the methods on the temporal split, fit and write every top-N."""
    started = time.perf_counter()
    settings = get_settings()
    reco = settings.recommender
    console = context.console
    report = StageReport(name="recommender")

    items, ratings = read_movielens(context.data_dir)
    item_counts = store.import_items(items)
    interaction_counts = store.import_interactions(ratings)
    console.print(
        f"MovieLens imported: {item_counts.added} items added, {item_counts.updated} updated, "
        f"{item_counts.unchanged} unchanged; "
        f"{interaction_counts.added} interactions added.",
        markup=False,
    )

    console.print(
        "Evaluating popularity, item-kNN, text profile and the hybrid on the temporal split "
        "(each user's last 10 interactions held out).",
        markup=False,
    )
    log = build_interaction_log(
        ratings, like_threshold=reco.like_threshold, dislike_threshold=reco.dislike_threshold
    )
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("time buckets", total=reco.time_buckets)
        evaluation = evaluate_methods(
            items,
            log,
            embedder=load_text_embedder(None),
            settings=reco,
            test_size=10,
            train_ranker=False,
            seed=settings.seed,
            progress=lambda _message: progress.advance(task),
        )
    plot = plot_metrics(evaluation.metrics, context.output_dir / "recommender-methods.png")
    report.notes.append(f"Method comparison plot: {plot}")
    report.figures += _evaluation_figures(evaluation.metrics, reco)

    console.print("Fitting the recommender on every interaction.", markup=False)
    fit_from_database()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("users", total=None)
        summary = run_batch(
            top_n=reco.top_n,
            chunk_size=reco.chunk_size,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    with session_scope() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(RecommendationRow)
            .where(RecommendationRow.run_id == summary.run_id)
        )
        users = session.scalar(
            select(func.count(func.distinct(RecommendationRow.user_id))).where(
                RecommendationRow.run_id == summary.run_id
            )
        )
    report.notes.append(f"Recommendation run: {summary.run_id}")
    report.figures += [
        Figure("users with a top-N list", int(users or 0)),
        Figure(f"recommendations written (top {reco.top_n})", int(rows or 0)),
    ]
    report.seconds = time.perf_counter() - started
    return report


def _evaluation_figures(
    metrics: dict[str, dict[str, float]], settings: RecommenderSettings
) -> list[Figure]:
    # The benchmark rows without the fine-tuned ranker were recorded with the
    # default number of time buckets; other settings have no row to match.
    comparable = settings.time_buckets == RecommenderSettings().time_buckets
    figures = []
    for method, label in (
        ("hybrid", "NDCG@10 hybrid"),
        ("item-knn", "NDCG@10 item-kNN"),
        ("popularity", "NDCG@10 popularity"),
    ):
        benchmark = (
            BenchmarkFigure("recommender", f"movielens {method} (no ranker)", "ndcg_at_10")
            if comparable
            else None
        )
        figures.append(Figure(label, round(metrics[method]["ndcg_at_10"], 4), benchmark))
    figures.append(
        Figure(
            "Recall@10 hybrid",
            round(metrics["hybrid"]["recall_at_10"], 4),
            BenchmarkFigure("recommender", "movielens hybrid (no ranker)", "recall_at_10")
            if comparable
            else None,
        )
    )
    return figures
