"""Recommender: offline quality on MovieLens and batch throughput at synthetic scale.

Usage:
    python tests/benchmarks/bench_recommender.py --stages movielens,scale
        [--home DIR] [--no-ranker] [--items 100000] [--users 1000000] [--max-minutes 20]

Stages:
    movielens  ml-latest-small, temporal split (each user's last 10 interactions
               are the test part, the 5 before them the validation part that
               the final ordering's weights are learned on; features per time
               bucket from interactions before the bucket's earliest cut).
               Recall@10, Recall@20, NDCG@10, coverage and novelty for
               popularity, item-kNN, the text-embedding profile and the hybrid,
               which fine-tunes the ranker once per bucket. Writes the bar chart
               to tests/benchmarks/results/recommender-methods.png.
    scale      synthetic catalogue and users (random clustered vectors and
               histories, no text encoding): the item index of the kind the
               settings choose at that size, its recall@10 against exact search
               on 1,000 sample profiles, and the batch path (profiles, FAISS
               and item-kNN candidates, features, learned-order scoring, MMR,
               reasons, rows written through the store into SQLite) in chunks
               of `chunk_size` users: users per second and peak memory
               (ru_maxrss). If the projected time for all users exceeds
               --max-minutes, the stage stops after that budget and records the
               measured rate and the users done, marked partial.
Rows go to ``tests/benchmarks/results/recommender.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tests.benchmarks._results import RESULTS_DIR, write_rows  # noqa: E402

RESULT_NAME = "recommender"
COMMAND = "python tests/benchmarks/bench_recommender.py --stages {stage}"
SECONDS_PER_DAY = 86_400.0


def main() -> None:
    """Run the chosen stages and write their rows."""
    args = _parse_args()
    os.environ["DIPTYCH_HOME"] = str(args.home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for stage in args.stages.split(","):
        if stage == "movielens":
            _stage_movielens(args)
        elif stage == "scale":
            _stage_scale(args)
        else:
            raise SystemExit(f"unknown stage {stage!r}; use movielens or scale")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="movielens,scale")
    parser.add_argument("--home", type=Path, default=Path("var/bench-recommender"))
    parser.add_argument("--no-ranker", action="store_true", help="Skip the ranker fine-tuning.")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=64)
    parser.add_argument("--max-minutes", type=float, default=20.0)
    return parser.parse_args()


def _stage_movielens(args: argparse.Namespace) -> None:
    from pipelines.datasets import read_movielens
    from services.recommender.catalogue import build_interaction_log
    from services.recommender.evaluation import evaluate_methods
    from services.recommender.plots import plot_metrics
    from shared.retrieval import load_text_embedder
    from shared.settings import get_settings

    settings = get_settings()
    reco = settings.recommender
    items, ratings = read_movielens()
    log = build_interaction_log(
        ratings, like_threshold=reco.like_threshold, dislike_threshold=reco.dislike_threshold
    )
    result = evaluate_methods(
        items,
        log,
        embedder=load_text_embedder(None),
        settings=reco,
        test_size=10,
        train_ranker=not args.no_ranker,
        seed=settings.seed,
        progress=print,
    )
    command = COMMAND.format(stage="movielens") + (" --no-ranker" if args.no_ranker else "")
    if reco.time_buckets != type(reco)().time_buckets:
        command = f"DIPTYCH_RECOMMENDER__TIME_BUCKETS={reco.time_buckets} {command}"
    hybrid = result.metrics["hybrid"]["ndcg_at_10"]
    rows: list[dict[str, Any]] = []
    print(f"{'method':14} R@10    R@20    NDCG@10 coverage novelty")
    for method, values in result.metrics.items():
        print(
            f"{method:14} {values['recall_at_10']:.4f}  {values['recall_at_20']:.4f}  "
            f"{values['ndcg_at_10']:.4f}  {values['coverage']:.4f}   {values['novelty']:.3f}"
        )
        rows.append(
            {
                "name": f"movielens {method}" + (" (no ranker)" if args.no_ranker else ""),
                **{key: round(value, 5) for key, value in values.items()},
                "hybrid_ndcg_ratio_vs_this": round(hybrid / values["ndcg_at_10"], 4),
                "users": result.users,
                "time_buckets": reco.time_buckets,
                "command": command,
            }
        )
    rows.append(
        {
            "name": "movielens ranker fine-tuning" + (" (no ranker)" if args.no_ranker else ""),
            "ranker_pairs": result.ranker_pairs,
            "train_seconds": round(result.ranker_seconds, 1),
            "evaluation_seconds": round(result.seconds, 1),
            "weights": dict(
                zip(
                    result.combination.to_dict()["features"],
                    result.combination.weights.round(4).tolist(),
                    strict=True,
                )  # type: ignore[call-overload]
            ),
            "command": command,
        }
    )
    print(
        f"ranker pairs {result.ranker_pairs}, {result.ranker_seconds:.0f} s; "
        f"total {result.seconds:.0f} s"
    )
    plot_metrics(result.metrics, RESULTS_DIR / "recommender-methods.png")
    print(write_rows(RESULT_NAME, rows))


def _stage_scale(args: argparse.Namespace) -> None:
    from services.recommender.behaviour import Catalogue
    from services.recommender.embeddings import build_item_index
    from services.recommender.features import build_behaviour_features
    from services.recommender.ranking import Combination, RecommenderModel
    from shared.retrieval import build_vector_index, measure_recall
    from shared.settings import get_settings
    from shared.storage import upgrade_database

    settings = get_settings().recommender
    rng = np.random.default_rng(42)
    started = time.perf_counter()
    vectors, clusters = _synthetic_vectors(rng, args.items, args.dimension)
    log = _synthetic_log(rng, clusters, n_users=args.users)
    generate_s = time.perf_counter() - started
    print(
        f"generated {args.items} items, {args.users} users, {len(log)} interactions "
        f"in {generate_s:.0f} s"
    )

    item_ids = np.arange(args.items, dtype=np.int64)
    catalogue = Catalogue(
        item_ids=item_ids,
        titles=[f"item {i}" for i in item_ids],
        texts=[""] * args.items,
        tags=[[f"cluster {c}"] for c in clusters],
        created_at=np.full(args.items, 1.5e9),
    )
    started = time.perf_counter()
    index = build_item_index(item_ids, vectors, embedding_model="synthetic", settings=settings)
    index_s = time.perf_counter() - started
    flat = build_vector_index(args.dimension, kind="flat")
    flat.add(item_ids, vectors)
    cut = float(log.times.max()) + 1
    started = time.perf_counter()
    behaviour = build_behaviour_features(
        log,
        catalogue,
        cut=cut,
        neighbours_per_item=settings.neighbours_per_item,
        trend_window_days=settings.trend_window_days,
    )
    features_s = time.perf_counter() - started
    model = RecommenderModel(
        catalogue=catalogue,
        vectors=vectors,
        ranker_vectors=vectors,
        index=index,
        behaviour=behaviour,
        combination=Combination.prior(),
        settings=settings,
    )
    print(f"index {index.kind} built in {index_s:.0f} s; features in {features_s:.0f} s")

    upgrade_database()
    throughput = _run_batch_path(model, log, max_minutes=args.max_minutes, users=args.users)
    sample = _sample_profiles(model, log, rng)
    recall = measure_recall(index, flat, sample, 10)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {
        "name": f"scale {args.items} items {args.users} users",
        "index_kind": index.kind,
        "recall_at_10_vs_flat": round(recall, 4),
        "users_done": throughput["users_done"],
        "users_per_s": round(throughput["users_per_s"], 1),
        "batch_seconds": round(throughput["seconds"], 1),
        "projected_seconds_all_users": round(args.users / throughput["users_per_s"], 0),
        "is_partial": throughput["users_done"] < args.users,
        "peak_rss_mib": round(peak_mib, 0),
        "interactions": len(log),
        "index_build_seconds": round(index_s, 1),
        "feature_build_seconds": round(features_s, 1),
        "dimension": args.dimension,
        "chunk_size": settings.chunk_size,
        "command": COMMAND.format(stage="scale"),
    }
    print(row)
    print(write_rows(RESULT_NAME, [row]))


def _synthetic_vectors(
    rng: np.random.Generator, n_items: int, dimension: int
) -> tuple[np.ndarray, np.ndarray]:
    n_clusters = max(n_items // 100, 1)
    centres = rng.standard_normal((n_clusters, dimension)).astype(np.float32)
    clusters = rng.integers(0, n_clusters, size=n_items)
    vectors = centres[clusters] + 0.6 * rng.standard_normal((n_items, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, clusters


def _synthetic_log(rng: np.random.Generator, clusters: np.ndarray, *, n_users: int):  # type: ignore[no-untyped-def]
    from services.recommender.behaviour import InteractionLog

    n_items = len(clusters)
    order = np.argsort(clusters, kind="stable")
    starts = np.searchsorted(clusters[order], np.arange(clusters.max() + 2))
    lengths = rng.integers(5, 16, size=n_users)  # 5..15 interactions, mean 10
    total = int(lengths.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    # Users favour a home cluster (Zipf-like cluster popularity); 80% of their items come from it.
    weights = 1.0 / np.arange(1, clusters.max() + 2) ** 0.8
    home = rng.choice(len(weights), size=n_users, p=weights / weights.sum())[users]
    size = np.maximum(starts[home + 1] - starts[home], 1)
    in_home = order[
        np.minimum(starts[home] + rng.integers(0, 1 << 30, size=total) % size, n_items - 1)
    ]
    random_items = rng.integers(0, n_items, size=total)
    items = np.where(rng.random(total) < 0.8, in_home, random_items)
    preferences = rng.choice(np.array([1, 0, -1], dtype=np.int8), size=total, p=[0.7, 0.2, 0.1])
    times = 1.6e9 + rng.random(total) * 365 * SECONDS_PER_DAY
    return InteractionLog(
        users=users,
        items=items,
        values=np.full(total, np.nan, dtype=np.float32),
        preferences=preferences,
        times=times,
    )


def _run_batch_path(model, log, *, max_minutes: float, users: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from rich.progress import Progress

    from services.recommender import store
    from services.recommender.ranking import recommend_users

    run_id = f"scale-{int(time.time())}"
    store.create_run(run_id, top_n=10)
    groups = log.group_by_user()
    chunk = model.settings.chunk_size * 20
    item_ids = model.catalogue.item_ids
    started = time.perf_counter()
    done = 0
    with Progress() as progress:
        task = progress.add_task("users", total=users)
        for start in range(0, users, chunk):
            user_ids = list(range(start, min(start + chunk, users)))
            histories = _histories_from_groups(log, groups, user_ids)
            lists = recommend_users(model, histories, top_n=10)
            rows = {
                user_id: [
                    {
                        "rank": rank,
                        "item_id": int(item_ids[rec.row]),
                        "score": rec.score,
                        "reason": rec.reason,
                        "reason_item_id": None
                        if rec.reason_row is None
                        else int(item_ids[rec.reason_row]),
                        "reason_tag": rec.reason_tag,
                    }
                    for rank, rec in enumerate(recs, start=1)
                ]
                for user_id, recs in zip(user_ids, lists, strict=True)
            }
            store.write_user_recommendations(run_id, rows)
            done += len(user_ids)
            progress.update(task, completed=done)
            elapsed = time.perf_counter() - started
            if elapsed > max_minutes * 60:
                break
    seconds = time.perf_counter() - started
    return {"users_done": done, "users_per_s": done / seconds, "seconds": seconds}


def _histories_from_groups(log, groups, user_ids):  # type: ignore[no-untyped-def]
    from services.recommender.ranking import UserHistory

    histories = []
    for user_id in user_ids:
        positions = groups.get(user_id, np.empty(0, dtype=np.int64))
        histories.append(
            UserHistory(
                rows=log.items[positions],
                preferences=log.preferences[positions],
                times=log.times[positions],
            )
        )
    return histories


def _sample_profiles(model, log, rng):  # type: ignore[no-untyped-def]
    from services.recommender.ranking import build_profiles

    groups = log.group_by_user()
    users = rng.choice(len(groups), size=1000, replace=False)
    histories = _histories_from_groups(log, groups, users.tolist())
    profiles = build_profiles(model.vectors, histories, model.settings)
    return profiles[np.linalg.norm(profiles, axis=1) > 0]


if __name__ == "__main__":
    main()
