"""`diptych recommend`: import files, fit, batch runs and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pipelines.cli import app
from services.recommender import store
from tests.services.recommender.conftest import (
    build_synthetic_interactions,
    build_synthetic_items,
)


@pytest.fixture
def runner() -> CliRunner:
    """A CLI runner with a wide terminal."""
    return CliRunner(env={"COLUMNS": "200"})


def _invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args))


def _write_files(folder: Path) -> tuple[Path, Path]:
    items = folder / "items.jsonl"
    items.write_text(
        "\n".join(
            json.dumps(
                {
                    "item_id": r.item_id,
                    "title": r.title,
                    "genres": r.fields["genres"],
                    "tags": [t.text for t in r.tags],
                },
                ensure_ascii=False,
            )
            for r in build_synthetic_items()
        ),
        encoding="utf-8",
    )
    events = folder / "events.csv"
    rows = ["user_id,item_id,kind,value,time"]
    rows += [
        f"{r.user_id},{r.item_id},{r.kind},{r.value},{r.time}"
        for r in build_synthetic_interactions()
    ]
    rows.append("7,9999,click,,1700000000")
    events.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return items, events


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recommend_commands_import_fit_batch(
    reco_env: Path, database_url: str, runner: CliRunner, tmp_path: Path
) -> None:
    """Import files (an unknown item is skipped), fit, run a batch and resume it."""
    items, events = _write_files(tmp_path)
    imported = _invoke(
        runner, "recommend", "import", "--items", str(items), "--interactions", str(events)
    )
    assert imported.exit_code == 0, imported.output
    assert "Items added: 40" in imported.output
    assert "skipped: 1" in imported.output
    assert "item 9999 is not in the catalogue" in imported.output

    fitted = _invoke(runner, "recommend", "fit")
    assert fitted.exit_code == 0, fitted.output
    assert "index flat" in fitted.output

    batch = _invoke(
        runner, "recommend", "batch", "--top-n", "5", "--run-id", "r1", "--chunk-size", "7"
    )
    again = _invoke(runner, "recommend", "batch", "--top-n", "5", "--run-id", "r1")
    assert batch.exit_code == 0, batch.output
    assert "30 users, 0 written before this call, finished" in batch.output
    assert "30 written before this call, finished" in again.output
    assert store.count_finished_users("r1") == 30


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recommend_batch_rejects_changed_top_n(stored_catalogue: str, runner: CliRunner) -> None:
    """Resuming a run with another list length fails with a clear message."""
    assert _invoke(runner, "recommend", "fit").exit_code == 0
    assert _invoke(runner, "recommend", "batch", "--top-n", "3", "--run-id", "r2").exit_code == 0
    resumed = _invoke(runner, "recommend", "batch", "--top-n", "4", "--run-id", "r2")
    assert resumed.exit_code == 2
    assert "same --top-n" in resumed.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recommend_batch_before_fit_names_command(
    reco_env: Path, database_url: str, runner: CliRunner
) -> None:
    """Without a fitted model the batch command names the fit command."""
    result = _invoke(runner, "recommend", "batch")
    assert result.exit_code == 2
    assert "diptych recommend fit" in result.output


def test_recommend_import_needs_a_source(runner: CliRunner) -> None:
    """Without any source the import command lists the options."""
    result = _invoke(runner, "recommend", "import")
    assert result.exit_code == 2
    assert "--dataset movielens" in result.output


def test_recommend_evaluate_prints_table_and_plot(
    data_dir: Path, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluate command prints one row per method and writes the PNG and JSON."""
    import numpy as np

    from services.recommender import evaluation
    from services.recommender.ranking import Combination

    def fake_evaluate(items, log, **options):  # type: ignore[no-untyped-def]
        assert options["train_ranker"] is False
        values = dict.fromkeys(evaluation.METRICS, 0.5)
        return evaluation.EvaluationResult(
            metrics={method: dict(values) for method in evaluation.METHODS},
            users=len(np.unique(log.users)),
            combination=Combination.prior(),
            ranker_seconds=0.0,
            ranker_pairs=0,
            seconds=1.0,
        )

    monkeypatch.setattr(evaluation, "evaluate_methods", fake_evaluate)
    plot = tmp_path / "methods.png"
    output = tmp_path / "metrics.json"
    result = _invoke(
        runner, "recommend", "evaluate", "--no-ranker", "--plot", str(plot), "--output", str(output)
    )
    assert result.exit_code == 0, result.output
    assert "610 users" in result.output
    for method in evaluation.METHODS:
        assert method in result.output
    assert plot.stat().st_size > 0
    assert json.loads(output.read_text())["users"] == 610


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_train_ranker_registers_and_fit_uses_it(
    reco_env: Path, database_url: str, runner: CliRunner
) -> None:
    """The fine-tuned ranker is registered, promoted and then used by fit and new items."""
    from fastapi.testclient import TestClient

    from tests.services.recommender.test_api import _build_app

    store.import_items(build_synthetic_items())
    store.import_interactions(build_synthetic_interactions(users=120, per_user=10))

    trained = _invoke(runner, "recommend", "train-ranker")
    fitted = _invoke(runner, "recommend", "fit")

    assert trained.exit_code == 0, trained.output
    assert "recommender-ranker@1" in trained.output
    assert "promoted" in trained.output
    assert fitted.exit_code == 0, fitted.output
    assert "ranker recommender-ranker@1" in fitted.output
    with TestClient(_build_app()) as client:
        created = client.post("/api/v1/items", json={"id": 900, "title": "fresh arrival"})
        listed = client.get("/api/v1/recommendations/4", params={"top_n": 5, "fresh": True})
    assert created.status_code == 201
    assert len(listed.json()["items"]) == 5


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_recommend_import_string_ids_and_updates(
    reco_env: Path, database_url: str, runner: CliRunner, tmp_path: Path
) -> None:
    """SKU ids import with keys; a changed file updates items and prints the fit command."""
    items = tmp_path / "items.csv"
    items.write_text(
        "item_id,title,description\n"
        "sku-00123,流浪地球,科幻\n"
        "sku-00124,Heat,crime\n"
        "sku-00125,Alien,horror\n",
        encoding="utf-8",
    )
    events = tmp_path / "events.csv"
    events.write_text(
        "user_id,item_id,kind,time\n"
        "u-1,sku-00123,like,1\nu-1,sku-00124,like,2\nu-2,sku-00124,like,3\n"
        "u-2,sku-00125,like,4\nu-3,sku-00123,click,5\nu-3,sku-404,click,6\n",
        encoding="utf-8",
    )
    first = _invoke(
        runner, "recommend", "import", "--items", str(items), "--interactions", str(events)
    )
    fitted = _invoke(runner, "recommend", "fit")
    items.write_text(
        "item_id,title,description\nsku-00123,流浪地球 2,续集\nsku-00124,Heat,crime\n",
        encoding="utf-8",
    )
    second = _invoke(runner, "recommend", "import", "--items", str(items))

    assert first.exit_code == 0, first.output
    assert "Items added: 3, updated: 0, unchanged: 0" in first.output
    assert "Interactions added: 5, skipped: 1" in first.output
    assert "item 'sku-404' is not in the catalogue" in first.output
    assert "recommend fit" not in first.output
    assert fitted.exit_code == 0, fitted.output
    assert "3 items, 3 users, 5 interactions" in fitted.output
    assert second.exit_code == 0, second.output
    assert "Items added: 0, updated: 1, unchanged: 1" in second.output
    assert "run `diptych recommend fit`" in second.output
    titles = {r.external_id: r.title for r in store.get_item_records()}
    assert titles == {"sku-00123": "流浪地球 2", "sku-00124": "Heat", "sku-00125": "Alien"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recommend_import_names_missing_id_column(
    reco_env: Path, database_url: str, runner: CliRunner, tmp_path: Path
) -> None:
    """A file whose id column has another name fails with the column to add; nothing is stored."""
    items = tmp_path / "items.csv"
    items.write_text("sku,title\nsku-1,Tea\n", encoding="utf-8")

    result = _invoke(runner, "recommend", "import", "--items", str(items))

    assert result.exit_code == 2
    assert "no `item_id` column" in result.output
    assert "'sku'" in result.output
    assert store.get_item_records() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_recommend_fit_shows_progress(stored_catalogue: str, runner: CliRunner) -> None:
    """The fit command draws one bar per stage with its count."""
    result = _invoke(runner, "recommend", "fit")
    assert result.exit_code == 0, result.output
    assert "Embedding items" in result.output
    assert "40/40" in result.output
    assert "Learning weights (time buckets)" in result.output
    assert "4/4" in result.output
    assert "Building and saving the model" in result.output
