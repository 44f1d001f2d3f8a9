"""Sentiment service: model quality, batched scoring speed, and the full StockNet replay.

Usage:
    python tests/benchmarks/bench_sentiment.py [--stages quality,throughput,replay]

Needs the production `sentiment` model in the registry of DIPTYCH_HOME (for
example `diptych train classifier --dataset phrasebank --config
pipelines/configs/phrasebank-head.yaml --name sentiment --promote`).

Stages:
    quality     accuracy and macro-F1 on the PhraseBank 50Agree test split
                (stratified 80/10/10, seed 42), and entity-level accuracy on
                all 14,405 SEntFiN (headline, entity) pairs: each entity scored
                as its headline, and as the clause of the headline that names it
    throughput  items per second of the service's batched path (score, link
                entities, score clauses of multi-entity items) against a plain
                transformers text-classification pipeline called one item at a
                time, same model, same process, on StockNet tweets
    replay      all 37,815 StockNet tweets onto a Redis Stream, two
                `diptych sentiment consume` processes, the monitor evaluating
                the default rules while they run; counts stored items and
                compares the alerts with an offline recomputation
The replay uses PostgreSQL (--database-url; a `bench` schema in it is
dropped and recreated) and a Redis database (--redis-url, flushed).
Rows go to ``tests/benchmarks/results/sentiment.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

from pipelines.datasets import load_dataset_splits, read_sentfin, resolve_data_dir  # noqa: E402
from services.sentiment.scoring import SentimentScorer, split_clauses  # noqa: E402
from tests.benchmarks._results import write_rows  # noqa: E402

COMMAND = "python tests/benchmarks/bench_sentiment.py --stages {stage}"
RESULT_NAME = "sentiment"
logger = logging.getLogger("bench_sentiment")


def _scorer() -> SentimentScorer:
    from services.sentiment.scoring import load_sentiment_scorer

    return load_sentiment_scorer()


def run_quality(scorer: SentimentScorer) -> list[dict[str, Any]]:
    """PhraseBank test split and SEntFiN entity-level accuracy."""
    data_dir = resolve_data_dir()
    splits = load_dataset_splits("phrasebank", data_dir=data_dir, seed=42)
    predicted = [s.label for s in scorer.score([e.text for e in splits.test])]
    gold = [e.label for e in splits.test]
    rows = [
        {
            "name": "quality/phrasebank",
            "accuracy": round(float(accuracy_score(gold, predicted)), 4),
            "macro_f1": round(float(f1_score(gold, predicted, average="macro")), 4),
            "n_test": len(gold),
            "model": scorer.reference,
            "command": COMMAND.format(stage="quality"),
        }
    ]
    print(f"phrasebank test: {rows[0]}")
    rows += _sentfin_rows(scorer, data_dir)
    return rows


def _entity_clause(text: str, entity: str) -> str:
    start = text.lower().find(entity.lower())
    if start < 0:
        return text
    for clause_start, clause_end in split_clauses(text):
        if clause_start <= start < clause_end:
            return text[clause_start:clause_end].strip(" ,;:") or text
    return text


def _sentfin_rows(scorer: SentimentScorer, data_dir: Path) -> list[dict[str, Any]]:
    pairs = read_sentfin(data_dir)
    headlines = sorted({pair.text for pair in pairs})
    started = time.perf_counter()
    headline_label = dict(zip(headlines, [s.label for s in scorer.score(headlines)], strict=True))
    clauses = sorted({_entity_clause(p.text, p.meta["entity"]) for p in pairs})
    clause_label = dict(zip(clauses, [s.label for s in scorer.score(clauses)], strict=True))
    seconds = time.perf_counter() - started
    gold = [pair.label for pair in pairs]
    counts: dict[str, int] = {}
    for pair in pairs:
        counts[pair.text] = counts.get(pair.text, 0) + 1
    rows = []
    for name, predict in (
        ("headline", lambda p: headline_label[p.text]),
        ("entity-clause", lambda p: clause_label[_entity_clause(p.text, p.meta["entity"])]),
    ):
        predicted = [predict(pair) for pair in pairs]
        several = [i for i, p in enumerate(pairs) if counts[p.text] > 1]
        rows.append(
            {
                "name": f"quality/sentfin-{name}",
                "accuracy": round(float(accuracy_score(gold, predicted)), 4),
                "macro_f1": round(float(f1_score(gold, predicted, average="macro")), 4),
                "accuracy_multi_entity": round(
                    float(np.mean([gold[i] == predicted[i] for i in several])), 4
                ),
                "n_pairs": len(pairs),
                "n_multi_entity_pairs": len(several),
                "score_seconds": round(seconds, 1),
                "model": scorer.reference,
                "command": COMMAND.format(stage="quality"),
            }
        )
        print(f"sentfin {name}: {rows[-1]}")
    return rows


def _tweets(limit: int) -> list[dict[str, Any]]:
    from services.sentiment.replay import iter_stocknet_items

    return list(iter_stocknet_items(resolve_data_dir(), limit=limit))


def run_throughput(
    scorer: SentimentScorer, *, batched_items: int, single_items: int
) -> list[dict[str, Any]]:
    """Batched service path against a one-at-a-time transformers pipeline, same model."""
    from transformers import pipeline

    from services.sentiment.gazetteer import load_default_gazetteer
    from services.sentiment.pipeline import score_items
    from services.sentiment.schemas import ItemCreate

    gazetteer = load_default_gazetteer()
    items = [ItemCreate.model_validate(raw) for raw in _tweets(batched_items)]
    batch_size = 64
    score_items(items[:batch_size], scorer=scorer, gazetteer=gazetteer)
    started = time.perf_counter()
    for start in range(0, len(items), batch_size):
        score_items(items[start : start + batch_size], scorer=scorer, gazetteer=gazetteer)
    batched_s = time.perf_counter() - started
    batched_rate = len(items) / batched_s

    classify = pipeline(
        "text-classification",
        model=scorer.classifier.model,
        tokenizer=scorer.classifier.tokenizer,
        device=-1,
    )
    texts = [item.text for item in items[:single_items]]
    classify(texts[0], truncation=True, max_length=scorer.classifier.max_length)
    started = time.perf_counter()
    for text in texts:
        classify(text, truncation=True, max_length=scorer.classifier.max_length)
    single_s = time.perf_counter() - started
    single_rate = len(texts) / single_s
    rows = [
        {
            "name": "throughput/batched-service-path",
            "items_per_s": round(batched_rate, 1),
            "n_items": len(items),
            "batch_size": batch_size,
            "ratio_vs_baseline": round(batched_rate / single_rate, 2),
            "torch_threads": _torch_threads(),
            "command": COMMAND.format(stage="throughput"),
        },
        {
            "name": "throughput/transformers-pipeline-one-at-a-time",
            "items_per_s": round(single_rate, 1),
            "n_items": len(texts),
            "ratio_vs_baseline": 1.0,
            "torch_threads": _torch_threads(),
            "command": COMMAND.format(stage="throughput"),
        },
    ]
    for row in rows:
        print(row)
    return rows


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _prepare_replay_database(database_url: str, home: Path) -> str:
    import sqlalchemy

    from shared.registry import find_version, promote_version, register_model, verify_version
    from shared.settings import reset_settings
    from shared.storage import dispose_engine, upgrade_database

    source = find_version("sentiment")
    model_dir = verify_version(source)
    separator = "&" if "?" in database_url else "?"
    bench_url = f"{database_url}{separator}options=-csearch_path%3Dbench"
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS bench CASCADE"))
        connection.execute(sqlalchemy.text("CREATE SCHEMA bench"))
    engine.dispose()
    os.environ["DIPTYCH_DATABASE_URL"] = bench_url
    os.environ["DIPTYCH_HOME"] = str(home)
    reset_settings()
    dispose_engine()
    upgrade_database(bench_url)
    row = register_model(
        name="sentiment",
        task=source.task,
        model_dir=model_dir,
        base_model=source.base_model,
        method=source.method,
        label_map=dict(source.label_map),
    )
    promote_version(row.reference)
    return bench_url


def run_replay(*, database_url: str, redis_url: str, limit: int | None) -> list[dict[str, Any]]:
    """All StockNet tweets through Redis and two consumer processes; alerts against offline."""
    import redis
    from sqlalchemy import func, select

    from services.sentiment.actions import compare_with_offline
    from services.sentiment.models import SentimentAlert, SentimentItem
    from services.sentiment.monitor import run_monitor_pass
    from services.sentiment.rules import load_rules
    from services.sentiment.stream import ensure_group, publish_items
    from shared.settings import get_settings, reset_settings
    from shared.storage import session_scope

    home = REPO / "var" / "bench-replay"
    bench_url = _prepare_replay_database(database_url, home)
    os.environ["DIPTYCH_REDIS_URL"] = redis_url
    reset_settings()
    settings = get_settings().sentiment
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    ensure_group(client, stream=settings.stream, group=settings.group)
    items = _tweets(limit or 10**9)
    rules = load_rules()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.update({"DIPTYCH_DATABASE_URL": bench_url, "DIPTYCH_HOME": str(home)})
    log_path = home / "workers.log"
    log = log_path.open("wb")
    diptych = str(Path(sys.executable).parent / "diptych")
    workers = [
        subprocess.Popen(
            [diptych, "sentiment", "consume", "--name", f"bench-{i}", "--exit-when-idle", "30"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for i in range(2)
    ]
    # Workers load the model before the clock starts: wait for their first log line.
    while log_path.read_bytes().count(b"consumer started") < 2:
        time.sleep(0.5)
    started = time.perf_counter()
    for start in range(0, len(items), 1000):
        publish_items(client, items[start : start + 1000], stream=settings.stream)
    passes = 0
    stored_at = started
    previous = -1
    while any(worker.poll() is None for worker in workers):
        run_monitor_pass(rules=rules, client=client, deliver=False)
        passes += 1
        with session_scope() as session:
            stored = int(session.scalar(select(func.count()).select_from(SentimentItem)) or 0)
        if stored != previous:
            stored_at, previous = time.perf_counter(), stored
            print(f"stored {stored}/{len(items)} after {stored_at - started:.0f} s", flush=True)
        time.sleep(2)
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    final = run_monitor_pass(rules=rules, client=client, deliver=False)
    seconds = stored_at - started
    with session_scope() as session:
        stored = int(session.scalar(select(func.count()).select_from(SentimentItem)) or 0)
        distinct = int(
            session.scalar(select(func.count(func.distinct(SentimentItem.external_id)))) or 0
        )
        fired = int(
            session.scalar(select(func.count()).where(SentimentAlert.fired_at.is_not(None))) or 0
        )
    comparison = compare_with_offline(rules)
    dead = int(client.xlen(settings.dead_letter_stream))
    row = {
        "name": "replay/stocknet-two-workers",
        "items_published": len(items),
        "items_stored": stored,
        "items_distinct": distinct,
        "dead_letters": dead,
        "items_per_s": round(stored / seconds, 1),
        "seconds": round(seconds, 1),
        "monitor_passes": passes,
        "episodes_live": comparison.stored,
        "episodes_offline": comparison.recomputed,
        "alerts_fired_live": fired,
        "episodes_only_live": len(comparison.only_stored),
        "episodes_only_offline": len(comparison.only_recomputed),
        "evaluated_until": final.evaluation.until.isoformat() if final.evaluation.until else None,
        "command": COMMAND.format(stage="replay"),
    }
    print(row)
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="quality,throughput,replay")
    parser.add_argument("--batched-items", type=int, default=4000)
    parser.add_argument("--single-items", type=int, default=1000)
    parser.add_argument("--replay-limit", type=int, default=None)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DIPTYCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    unknown = set(stages) - {"quality", "throughput", "replay"}
    if unknown:
        parser.error(f"unknown stage(s) {sorted(unknown)}: use quality, throughput, replay")
    rows: list[dict[str, Any]] = []
    if "quality" in stages or "throughput" in stages:
        scorer = _scorer()
        if "quality" in stages:
            rows += run_quality(scorer)
            write_rows(RESULT_NAME, rows)
        if "throughput" in stages:
            rows += run_throughput(
                scorer, batched_items=args.batched_items, single_items=args.single_items
            )
            write_rows(RESULT_NAME, rows)
    if "replay" in stages:
        rows += run_replay(
            database_url=args.database_url, redis_url=args.redis_url, limit=args.replay_limit
        )
        write_rows(RESULT_NAME, rows)


if __name__ == "__main__":
    main()
