"""Tests of the `diptych` command line through Typer's test runner.

Every test gets its own DIPTYCH_HOME, so the database is the embedded SQLite file there.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import inspect
from typer.testing import CliRunner

from pipelines.cli import app
from shared.registry import ModelVersion
from shared.settings import get_settings, reset_settings
from shared.storage import get_engine, upgrade_database
from tests.shared.registry.conftest import register_tiny_model, write_tiny_model_folder

NAME = "support-intent"
KNOWN_DATASETS = ("banking77", "bitext", "phrasebank", "sentfin", "fiqa")


@pytest.fixture
def runner() -> CliRunner:
    """A runner with a 200-column console, so Rich prints each table cell on one line."""
    return CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def migrated_home() -> Path:
    """The test's DIPTYCH_HOME with its SQLite database migrated to the latest revision."""
    upgrade_database()
    return get_settings().home


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A fresh tiny classifier folder with safetensors weights, outside the registry."""
    return write_tiny_model_folder(tmp_path / "tiny-model")


def _invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args))


def _flat(text: str) -> str:
    """Join the lines Rich wrapped at the console width back into one line."""
    return " ".join(text.split())


# Help


@pytest.mark.parametrize("command", [[], ["db"], ["train"], ["models"]])
def test_help_exits_zero(runner: CliRunner, command: list[str]) -> None:
    """`--help` of the app and of each sub-app prints usage and exits 0."""
    result = _invoke(runner, *command, "--help")

    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


# db


def test_db_upgrade_creates_database_in_fresh_home(runner: CliRunner) -> None:
    """`db upgrade` on an empty home creates the SQLite file and the registry table."""
    database_file = get_settings().home / "diptych.db"
    assert not database_file.exists()

    result = _invoke(runner, "db", "upgrade")

    assert result.exit_code == 0, result.output
    assert "is migrated to heads" in _flat(result.output)
    assert database_file.is_file()
    assert "model_versions" in inspect(get_engine()).get_table_names()


def test_db_check_fails_on_unmigrated_database(runner: CliRunner) -> None:
    """`db check` on a fresh home exits 1 and names the command that fixes it."""
    result = _invoke(runner, "db", "check")

    assert result.exit_code == 1, result.output
    assert "no revision" in _flat(result.output)
    assert "run `diptych db upgrade` first" in _flat(result.output)


def test_db_check_passes_after_upgrade(runner: CliRunner) -> None:
    """After `db upgrade`, `db check` exits 0."""
    assert _invoke(runner, "db", "upgrade").exit_code == 0

    result = _invoke(runner, "db", "check")

    assert result.exit_code == 0, result.output
    assert "is current" in _flat(result.output)


def test_db_check_waits_for_a_migration_elsewhere(runner: CliRunner) -> None:
    """`db check --wait` keeps checking while another process migrates, then exits 0."""
    upgrader = threading.Timer(1.0, upgrade_database)
    upgrader.start()
    try:
        result = _invoke(runner, "db", "check", "--wait", "60", "--interval", "0.2")
    finally:
        upgrader.join()

    assert result.exit_code == 0, result.output
    assert "waiting:" in result.output
    assert "is current" in _flat(result.output)


def test_db_check_names_an_unreachable_database(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable database gives exit 1 and points at the URL setting."""
    monkeypatch.setenv("DIPTYCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    reset_settings()

    result = _invoke(runner, "db", "check", "--wait", "0.5", "--interval", "0.1")

    assert result.exit_code == 1, result.output
    assert "could not be read" in _flat(result.output)
    assert "DIPTYCH_DATABASE_URL" in _flat(result.output)


# models


@pytest.mark.usefixtures("migrated_home")
def test_models_list_prints_empty_table(runner: CliRunner) -> None:
    """`models list` on an empty registry prints the table header and exits 0."""
    result = _invoke(runner, "models", "list")

    assert result.exit_code == 0, result.output
    assert "Model versions" in result.output
    assert "reference" in result.output


@pytest.mark.usefixtures("migrated_home")
def test_models_list_shows_registered_version(runner: CliRunner, tiny_model_dir: Path) -> None:
    """A registered version appears with its stage and accuracy."""
    register_tiny_model(tiny_model_dir)

    result = _invoke(runner, "models", "list")

    assert result.exit_code == 0, result.output
    assert f"{NAME}@1" in result.output
    assert "candidate" in result.output
    assert "0.7500" in result.output


@pytest.mark.usefixtures("migrated_home")
def test_models_show_prints_manifest_json(runner: CliRunner, tiny_model_dir: Path) -> None:
    """`models show NAME@1` prints the manifest as JSON with the checksums and the stage."""
    row: ModelVersion = register_tiny_model(tiny_model_dir)

    result = _invoke(runner, "models", "show", f"{NAME}@1")

    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["checksums"] == row.checksums
    assert sorted(manifest["checksums"]) == ["config.json", "model.safetensors"]
    assert manifest["stage"] == "candidate"
    assert manifest["path"] == row.path


@pytest.mark.usefixtures("migrated_home")
def test_models_show_missing_exits_2(runner: CliRunner) -> None:
    """`models show` of an unknown name exits 2 and reports that nothing is registered."""
    result = _invoke(runner, "models", "show", "missing")

    assert result.exit_code == 2
    assert "error:" in result.output
    assert "Nothing is registered under that name" in _flat(result.output)


@pytest.mark.usefixtures("migrated_home")
def test_models_show_invalid_reference_exits_2(runner: CliRunner) -> None:
    """An invalid reference exits 2 with the naming rule instead of a traceback."""
    result = _invoke(runner, "models", "show", "Support Intent")

    assert result.exit_code == 2
    assert "is invalid" in _flat(result.output)


@pytest.mark.usefixtures("migrated_home")
def test_models_promote_then_rollback(runner: CliRunner, tiny_model_dir: Path) -> None:
    """Promoting v1 then v2 and rolling back puts v1 back in production."""
    # Given: two registered versions.
    register_tiny_model(tiny_model_dir)
    register_tiny_model(tiny_model_dir)

    # When: v1 and then v2 are promoted, and the name is rolled back.
    first = _invoke(runner, "models", "promote", f"{NAME}@1")
    second = _invoke(runner, "models", "promote", f"{NAME}@2")
    rollback = _invoke(runner, "models", "rollback", NAME)

    # Then: each command reports the version now in production.
    assert first.exit_code == 0, first.output
    assert _flat(first.stdout) == f"{NAME}@1 is now in production."
    assert second.exit_code == 0, second.output
    assert _flat(second.stdout) == f"{NAME}@2 is now in production."
    assert rollback.exit_code == 0, rollback.output
    assert _flat(rollback.stdout) == f"{NAME}@1 is now in production."


@pytest.mark.usefixtures("migrated_home")
def test_models_rollback_to_version(runner: CliRunner, tiny_model_dir: Path) -> None:
    """`models rollback NAME --to 1` restores version 1 while version 3 is in production."""
    for _ in range(3):
        register_tiny_model(tiny_model_dir)
    _invoke(runner, "models", "promote", f"{NAME}@3")

    result = _invoke(runner, "models", "rollback", NAME, "--to", "1")

    assert result.exit_code == 0, result.output
    assert _flat(result.output) == f"{NAME}@1 is now in production."


@pytest.mark.usefixtures("migrated_home")
def test_models_rollback_only_version_exits_2(runner: CliRunner, tiny_model_dir: Path) -> None:
    """Rolling back the only version exits 2 and reports that nothing is older."""
    register_tiny_model(tiny_model_dir)
    promoted = _invoke(runner, "models", "promote", f"{NAME}@1")
    assert promoted.exit_code == 0, promoted.output

    result = _invoke(runner, "models", "rollback", NAME)

    assert result.exit_code == 2
    assert "oldest version" in _flat(result.output)
    assert "nothing to roll back to" in _flat(result.output)


@pytest.mark.usefixtures("migrated_home")
def test_models_promote_missing_exits_2(runner: CliRunner, tiny_model_dir: Path) -> None:
    """Promoting a version that does not exist exits 2 and lists the existing ones."""
    register_tiny_model(tiny_model_dir)

    result = _invoke(runner, "models", "promote", f"{NAME}@4")

    assert result.exit_code == 2
    assert f"{NAME}@1 (candidate)" in _flat(result.output)


# train


def test_train_classifier_without_data_exits_2(runner: CliRunner) -> None:
    """`train classifier` without --dataset or --train-file exits 2 naming both options."""
    result = _invoke(runner, "train", "classifier")

    assert result.exit_code == 2
    assert "--dataset" in result.output
    assert "--train-file" in result.output


def test_train_classifier_with_both_sources_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    """Passing both --dataset and --train-file is rejected the same way."""
    train_file = tmp_path / "train.csv"
    train_file.write_text("text,label\nwhere is my card,card_lost\n", encoding="utf-8")

    result = _invoke(
        runner, "train", "classifier", "--dataset", "banking77", "--train-file", str(train_file)
    )

    assert result.exit_code == 2
    assert "exactly one of" in _flat(result.output)


def test_train_classifier_unknown_dataset_lists_known(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown --dataset exits 2 and lists every known data set."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("DIPTYCH_DATA_DIR", str(data_dir))
    reset_settings()

    result = _invoke(runner, "train", "classifier", "--dataset", "nope")

    assert result.exit_code == 2
    output = _flat(result.output)
    assert "'nope'" in output
    for name in KNOWN_DATASETS:
        assert repr(name) in output


# predict


@pytest.mark.usefixtures("migrated_home")
def test_predict_missing_model_exits_2(runner: CliRunner) -> None:
    """`predict --model missing` exits 2 with the registry's message."""
    result = _invoke(runner, "predict", "--model", "missing", "where is my card?")

    assert result.exit_code == 2
    assert "error:" in result.output
    assert "'missing'" in result.output


@pytest.mark.usefixtures("migrated_home")
def test_predict_without_texts_exits_2(runner: CliRunner) -> None:
    """`predict` with neither texts nor --file exits 2 and explains how to pass them."""
    result = _invoke(runner, "predict", "--model", NAME)

    assert result.exit_code == 2
    assert "--file" in result.output


# Errors a new user meets first


def test_models_list_migrates_fresh_home(runner: CliRunner) -> None:
    """`models list` on a never-used home creates the embedded database instead of crashing."""
    result = _invoke(runner, "models", "list")

    assert result.exit_code == 0, result.output
    assert "Model versions" in result.output


def test_predict_file_missing_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    """A missing `--file` is one error line naming the file, not a traceback."""
    missing = tmp_path / "nope.txt"

    result = _invoke(runner, "predict", "--model", "any", "--file", str(missing))

    assert result.exit_code == 2
    assert "nope.txt" in _flat(result.output)
    assert "Traceback" not in result.output


def test_predict_file_not_utf8_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    """A Latin-1 `--file` is rejected with the fix: convert it to UTF-8."""
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café crème\n".encode("latin-1"))

    result = _invoke(runner, "predict", "--model", "any", "--file", str(latin))

    assert result.exit_code == 2
    assert "not UTF-8" in _flat(result.output)


def test_train_unknown_method_names_option(runner: CliRunner) -> None:
    """A misspelt `--method` is reported with the option, the value and the choices."""
    result = _invoke(runner, "train", "classifier", "--dataset", "banking77", "--method", "lorra")

    assert result.exit_code == 2
    flat = _flat(result.output)
    assert "--method 'lorra'" in flat
    assert "'lora'" in flat
    assert "pydantic.dev" not in flat


@pytest.mark.usefixtures("data_dir")
def test_train_sample_below_label_count_exits_2(runner: CliRunner) -> None:
    """`--sample` smaller than the label count is one error line, not a traceback."""
    result = _invoke(runner, "train", "classifier", "--dataset", "banking77", "--sample", "50")

    assert result.exit_code == 2
    assert "number of labels (77)" in _flat(result.output)
    assert "Traceback" not in result.output


def test_worker_rejects_unknown_queue() -> None:
    result = CliRunner().invoke(app, ["worker", "--queues", "support,mail"])

    assert result.exit_code == 2
    assert "unknown queue(s) mail" in result.output


def test_worker_needs_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIPTYCH_BROKER_URL", raising=False)
    reset_settings()

    result = CliRunner().invoke(app, ["worker", "--queues", "support"])

    assert result.exit_code == 2
    assert "DIPTYCH_BROKER_URL" in result.output


def test_beat_shows_the_schedule() -> None:
    result = CliRunner().invoke(app, ["beat", "--show"])

    assert result.exit_code == 0
    assert "training.check_candidates" in result.output
