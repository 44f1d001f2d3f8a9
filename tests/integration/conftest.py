"""Fixtures for tests that run the three services together on several worker nodes.

The session-scoped models come from the service test packages, so a model
built there is built the same way here. A session that runs both folders
builds each one twice, once per folder that defines the fixture.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.recommender import store as reco_store
from services.recommender.serving import fit_from_database
from shared.settings import reset_settings
from tests._celery import WorkerProcess, spawn_process
from tests.services.recommender.conftest import (  # noqa: F401
    build_synthetic_interactions,
    build_synthetic_items,
    character_encoder,
    embedding_cache,
    reco_env,
)
from tests.services.sentiment.conftest import sentiment_env, sentiment_model  # noqa: F401
from tests.services.support.conftest import SupportModels, support_env, support_models  # noqa: F401

# The synthetic catalogue: 40 items, each user rating 8 of them, so every user
# has 32 unseen items to recommend from.
CATALOGUE_ITEMS = 40
CATALOGUE_USERS = 40


@dataclass(frozen=True)
class FleetData:
    """What the fleet fixture stored: ticket texts, knowledge-base size and catalogue users."""

    ticket_texts: list[str]
    articles: int
    users: int


@pytest.fixture
def fleet_env(
    reco_env: Path,  # noqa: F811
    support_env: SupportModels,  # noqa: F811
    sentiment_env: object,  # noqa: F811
    celery_broker_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> FleetData:
    """One database and home with all three services' models, data and settings in place.

    The recommender's tiny encoder is the encoder of every service here, so the
    knowledge base is indexed with it. `reco_env` comes first, so that it is set
    before the articles are imported.
    """
    from services.support.kb import import_articles
    from services.support.knowledge import build_bitext_articles

    monkeypatch.setenv("DIPTYCH_REDIS_URL", celery_broker_url)
    reset_settings()
    articles = import_articles(build_bitext_articles(support_env.splits.train)).added
    reco_store.import_items(build_synthetic_items(CATALOGUE_ITEMS))
    reco_store.import_interactions(
        build_synthetic_interactions(CATALOGUE_USERS, items=CATALOGUE_ITEMS)
    )
    fit_from_database()
    return FleetData(
        ticket_texts=[example.text for example in support_env.splits.train],
        articles=articles,
        users=CATALOGUE_USERS,
    )


def _wait_until_consuming(consumer: WorkerProcess, timeout_s: float) -> None:
    started = re.compile(rf"consumer started .* name={re.escape(consumer.name)}$", re.MULTILINE)
    deadline = time.monotonic() + timeout_s
    while not started.search(consumer.log):
        if not consumer.is_running():
            pytest.fail(
                f"consumer {consumer.name} exited with status {consumer.process.returncode} "
                f"before it started; log:\n{consumer.log}"
            )
        if time.monotonic() > deadline:
            consumer.stop(timeout_s=5)
            pytest.fail(
                f"consumer {consumer.name} not started after {timeout_s} s:\n{consumer.log}"
            )
        time.sleep(0.2)


@pytest.fixture
def start_consumer(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """A factory that starts ``diptych sentiment consume`` processes, stopped after the test.

    The factory takes `name` (the consumer name in the group), `env` (variables
    added to this process's environment) and `ready_timeout_s` (default 180),
    and returns once the consumer has loaded its model and joined the group.
    """
    consumers: list[WorkerProcess] = []

    def start(
        *, name: str, env: Mapping[str, str] | None = None, ready_timeout_s: float = 180.0
    ) -> WorkerProcess:
        command = [sys.executable, "-m", "pipelines.cli", "sentiment", "consume", "--name", name]
        consumer = spawn_process(name, command, tmp_path / f"consumer-{name}.log", env or {})
        consumers.append(consumer)
        _wait_until_consuming(consumer, ready_timeout_s)
        return consumer

    yield start
    for consumer in consumers:
        consumer.stop()
