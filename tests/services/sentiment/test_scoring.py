"""Scoring: labels, signed scores, per-clause entity scores, and the CLI around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from services.sentiment.gazetteer import load_default_gazetteer
from services.sentiment.pipeline import score_items
from services.sentiment.schemas import ItemCreate
from services.sentiment.scoring import SentimentScorer, load_sentiment_scorer, split_clauses


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        ("Infosys gains, TCS falls", ["Infosys gains", ", TCS falls"]),
        ("X beats estimates but Y cuts jobs", ["X beats estimates ", "but Y cuts jobs"]),
        ("亚马逊股价下跌，微软上涨", ["亚马逊股价下跌", "，微软上涨"]),
        ("no break here", ["no break here"]),
        ("trailing comma,", ["trailing comma,"]),
        ("", [""]),
    ],
)
def test_split_clauses(text: str, clauses: list[str]) -> None:
    """Clauses end at punctuation and before contrast words, in both scripts, covering the text."""
    spans = split_clauses(text)
    assert [text[start:end] for start, end in spans] == clauses
    assert "".join(text[start:end] for start, end in spans) == text


def test_scores_are_signed_and_consistent(sentiment_env: object) -> None:
    """The signed score is P(positive) - P(negative); empty text gets an error."""
    scorer = load_sentiment_scorer()
    results = scorer.score(["Profit rose sharply to a record", "   ", "营业利润下降"])
    first = results[0]
    assert first.label in ("positive", "neutral", "negative")
    assert first.score == pytest.approx(first.positive - first.negative)
    assert first.positive + first.neutral + first.negative == pytest.approx(1.0, abs=1e-5)
    assert results[1].error is not None
    assert results[2].error is None


def test_entities_in_different_clauses_get_clause_scores(sentiment_env: object) -> None:
    """Two entities in two clauses are scored on their own clauses; one entity gets the item's."""
    scorer = load_sentiment_scorer()
    gazetteer = load_default_gazetteer()
    items = [
        ItemCreate(
            id="m1",
            published_at="2024-01-01T00:00:00Z",
            text="Pfizer profit jumps to a record, Microsoft shares slump on losses",
        ),
        ItemCreate(id="s1", published_at="2024-01-01T00:00:00Z", text="Pfizer profit jumps"),
    ]
    mixed, single = score_items(items, scorer=scorer, gazetteer=gazetteer)
    clause_scores = scorer.score(
        ["Pfizer profit jumps to a record", ", Microsoft shares slump on losses".strip()]
    )
    assert [m.entity for m, _s in mixed.mentions] == ["PFE", "MSFT"]
    assert [s.score for _m, s in mixed.mentions] == pytest.approx([c.score for c in clause_scores])
    assert [s.score for _m, s in single.mentions] == pytest.approx([single.scored.score])


def test_scorer_rejects_model_without_sentiment_labels(sentiment_env: object) -> None:
    """A classifier whose labels are not positive/neutral/negative is refused with the fix."""
    classifier = load_sentiment_scorer().classifier
    classifier_copy = type(classifier).__new__(type(classifier))
    classifier_copy.__dict__.update(classifier.__dict__)
    classifier_copy.labels = ["a", "b", "c"]
    with pytest.raises(ValueError, match="phrasebank"):
        SentimentScorer(classifier_copy)


def test_cli_ingest_direct_stores_items(sentiment_env: object, tmp_path: Path) -> None:
    """`diptych sentiment ingest --direct` stores valid items and reports the invalid one."""
    path = tmp_path / "items.jsonl"
    rows = [
        {"id": "c1", "published_at": "2024-01-01T00:00:00Z", "text": "Amazon 股价上涨"},
        {"id": "c2", "published_at": "2024-01-01T00:01:00Z", "text": ""},
    ]
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["sentiment", "ingest", str(path), "--direct"])
    assert result.exit_code == 0, result.output
    assert "Stored 1, duplicates 0, invalid 1." in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["sentiment", "replay", "--dataset", "sentfin"], "cannot be replayed"),
        (
            ["sentiment", "silence", "--matcher", "entity=X", "--duration", "soon"],
            "invalid duration",
        ),
        (["sentiment", "ingest", "/nonexistent.jsonl", "--direct"], "not found"),
    ],
)
def test_cli_errors_name_the_fix(sentiment_db: str, arguments: list[str], message: str) -> None:
    """CLI mistakes exit with code 2 and a message naming the value."""
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_silence_on_fresh_home(tmp_path: Path) -> None:
    """`diptych sentiment silence` works on a new embedded database and can be expired."""
    runner = CliRunner()
    created = runner.invoke(
        app,
        ["sentiment", "silence", "--matcher", "entity=AMZN", "--matcher", "rule=~neg.*"],
    )
    expired = runner.invoke(app, ["sentiment", "expire-silence", "1"])
    assert created.exit_code == 0, created.output
    assert "Silence 1 until" in created.output
    assert "Silence 1 expired." in expired.output
