"""Queue statistics read from a real Redis through a real Celery producer."""

from __future__ import annotations

import pytest
import redis

from shared.settings import Settings
from shared.worker import create_celery_app
from shared.worker.monitor import read_queue_stats
from shared.worker.redelivery import DEAD_LETTER_KEY_PREFIX


def test_no_broker_gives_no_rows() -> None:
    assert read_queue_stats(Settings(broker_url=None)) == []


def test_counts_waiting_and_dead_letters(celery_redis_url: str) -> None:
    settings = Settings(broker_url=celery_redis_url)
    app = create_celery_app(settings)
    for ticket_id in range(3):
        app.send_task("support.triage", args=(ticket_id,))
    app.send_task("support.draft", args=(9,), priority=6)
    app.send_task("sentiment.score", args=([1],))
    with redis.Redis.from_url(celery_redis_url) as client:
        client.rpush(DEAD_LETTER_KEY_PREFIX + "support", "{}")

    stats = {row.queue: row for row in read_queue_stats(settings)}

    assert stats["support"].waiting == 4
    assert stats["support"].dead_letters == 1
    assert stats["sentiment"].waiting == 1
    assert stats["recommender"].waiting == 0
    assert set(stats) == {"support", "sentiment", "recommender", "training", "default"}


def test_queues_read_from_broker_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue lists come from the broker's database, dead letters from DIPTYCH_REDIS_URL's."""
    from shared.worker import monitor

    seen: dict[str, list[list[str]]] = {}

    def fake_count(url: str, groups: list[list[str]]) -> list[int]:
        seen[url] = groups
        return [0] * len(groups)

    monkeypatch.setattr(monitor, "_count_lists", fake_count)
    settings = Settings(broker_url="redis://127.0.0.1:6379/3", redis_url="redis://127.0.0.1:6379/4")

    read_queue_stats(settings)

    assert seen["redis://127.0.0.1:6379/3"][0][0] == "support"
    assert seen["redis://127.0.0.1:6379/4"][0] == [DEAD_LETTER_KEY_PREFIX + "support"]
