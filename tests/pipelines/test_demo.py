"""`diptych demo` runs the three services on the public data and prints one summary.

The full run uses 200 training texts per data set, drafts 2 tickets, replays
600 tweets and writes every MovieLens user's list: about three minutes on 2 CPU
cores, so one test covers it. The other tests check the failure paths.
"""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.demo.summary import BenchmarkFigure, load_benchmark_value
from services.recommender.models import RecommendationRow
from services.sentiment.models import SentimentItem
from services.support.models import Draft
from shared.registry import find_version
from shared.settings import get_settings, reset_settings
from shared.storage import session_scope

MOVIELENS_USERS = 610
TOP_N = 10


@pytest.fixture
def runner() -> CliRunner:
    """A runner with a 200-column console, so Rich keeps each message on one line."""
    return CliRunner(env={"COLUMNS": "200"})


def _flat(text: str) -> str:
    """Join the lines Rich wrapped at the console width back into one line."""
    return " ".join(text.split())


def _figures(home: Path) -> dict[str, dict[str, float]]:
    payload = json.loads((home / "demo" / "summary.json").read_text(encoding="utf-8"))
    return {
        stage["name"]: {figure["label"]: figure["value"] for figure in stage["figures"]}
        for stage in payload["stages"]
    }


@pytest.mark.usefixtures("data_dir")
def test_demo_runs_every_service(runner: CliRunner) -> None:
    """The sampled demo trains both classifiers, drafts, alerts, recommends and sums up.

    Given the public data folder and an empty home.
    When `diptych demo` runs with small samples.
    Then it exits 0 and prints the summary and how to open the console.
    The database holds the drafts, the scored tweets and a list for every user,
    and summary.json holds the same figures.
    """
    result = runner.invoke(
        app, ["demo", "--sample", "200", "--tickets", "2", "--stream-items", "600"]
    )

    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "Diptych demo summary" in output
    assert "users create --username admin --role admin" in output
    assert "serve" in output

    home = get_settings().home.resolve()
    figures = _figures(home)
    assert set(figures) == {"support", "sentiment", "recommender"}
    assert 0.5 < figures["support"]["intent accuracy (Bitext test)"] <= 1.0
    assert figures["support"]["retrieval recall@5"] > 0.5
    assert figures["support"]["tickets drafted"] == 2
    assert 0.0 < figures["sentiment"]["sentiment accuracy (PhraseBank test)"] <= 1.0
    assert figures["sentiment"]["tweets replayed"] == 600
    assert figures["sentiment"]["tweets stored (new)"] == 600
    assert figures["recommender"]["users with a top-N list"] == MOVIELENS_USERS
    assert figures["recommender"]["recommendations written (top 10)"] == MOVIELENS_USERS * TOP_N
    assert figures["recommender"]["NDCG@10 hybrid"] > 0.0

    assert find_version("support-intent").stage == "production"
    assert find_version("sentiment").stage == "production"
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Draft)) >= 2
        assert session.scalar(select(func.count()).select_from(SentimentItem)) == 600
        assert (
            session.scalar(select(func.count(func.distinct(RecommendationRow.user_id))))
            == MOVIELENS_USERS
        )
    mail_dir = home / "demo" / "mail"
    assert figures["sentiment"]["alert e-mails in the mail sink"] == len(mailbox.Maildir(mail_dir))
    assert (home / "demo" / "recommender-methods.png").stat().st_size > 0


@pytest.mark.usefixtures("data_dir")
def test_demo_rerun_keeps_ticket_drafts(runner: CliRunner) -> None:
    """A second support run finds its tickets by external id and drafts nothing again."""
    arguments = ["demo", "--stages", "support", "--sample", "60", "--tickets", "1"]
    assert runner.invoke(app, arguments).exit_code == 0
    with session_scope() as session:
        first = session.scalar(select(func.count()).select_from(Draft))

    result = runner.invoke(app, arguments)

    assert result.exit_code == 0, result.output
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Draft)) == first
    assert find_version("support-intent").version == 2


def test_demo_unknown_stage_fails(runner: CliRunner) -> None:
    """An unknown stage name exits 2 and lists the stages there are."""
    result = runner.invoke(app, ["demo", "--stages", "support,weather"])

    assert result.exit_code == 2
    assert "'weather'" in _flat(result.output)
    assert "support, sentiment, recommender" in _flat(result.output)


def test_demo_without_data_folder_fails(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing data folder stops the demo with a non-zero exit and names DIPTYCH_DATA_DIR."""
    missing = tmp_path / "no-such-data"
    monkeypatch.setenv("DIPTYCH_DATA_DIR", str(missing))
    reset_settings()

    result = runner.invoke(app, ["demo", "--sample", "200"])

    assert result.exit_code != 0
    assert "DIPTYCH_DATA_DIR" in _flat(result.output)
    assert str(missing) in _flat(result.output)


def test_demo_prints_bracketed_path_verbatim(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Square brackets in the missing path are printed as text, not read as Rich markup."""
    missing = tmp_path / "[old]" / "no-such-data"
    monkeypatch.setenv("DIPTYCH_DATA_DIR", str(missing))
    reset_settings()

    result = runner.invoke(app, ["demo", "--sample", "200"])

    assert result.exit_code == 2, result.output
    assert str(missing) in _flat(result.output)


def test_demo_with_unset_data_dir_fails(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """With DIPTYCH_DATA_DIR unset the demo exits non-zero and its message names the setting."""
    monkeypatch.delenv("DIPTYCH_DATA_DIR", raising=False)
    reset_settings()

    result = runner.invoke(app, ["demo", "--sample", "200"])

    assert result.exit_code != 0
    assert "DIPTYCH_DATA_DIR" in _flat(result.output)


def test_demo_without_data_skips_database(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data check comes first, so a failed start leaves the home without a database."""
    monkeypatch.setenv("DIPTYCH_DATA_DIR", str(tmp_path / "no-such-data"))
    reset_settings()

    runner.invoke(app, ["demo", "--sample", "200"])

    assert not (get_settings().home / "diptych.db").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"name": "intent-head", "accuracy": 0.9}]', 0.9),
        (
            '[{"name": "intent-head", "accuracy": 0.8}, {"name": "intent-head", "accuracy": 0.9}]',
            0.9,
        ),
        ('[{"name": "other", "accuracy": 0.9}]', None),
        ('[{"name": "intent-head", "accuracy": "high"}]', None),
        ("{not json", None),
    ],
)
def test_benchmark_value_lookup(tmp_path: Path, content: str, expected: float | None) -> None:
    """The summary takes the last row of that name, and a missing or odd value gives None."""
    (tmp_path / "support.json").write_text(content, encoding="utf-8")

    value = load_benchmark_value(BenchmarkFigure("support", "intent-head", "accuracy"), tmp_path)

    assert value == expected


def test_benchmark_value_missing_file(tmp_path: Path) -> None:
    """Without the results file the benchmark column stays empty."""
    assert (
        load_benchmark_value(BenchmarkFigure("support", "intent-head", "accuracy"), tmp_path)
        is None
    )
