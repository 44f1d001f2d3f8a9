"""`diptych demo` trains, evaluates and promotes a Banking77 intent model end to end.

The run trains the `head` method on a 200-text sample and evaluates on the full
3,080-text test split: about a minute on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.demo import INTENT_MODEL_NAME
from shared.registry import find_version
from shared.settings import get_settings, reset_settings

BANKING77_LABELS = 77
BANKING77_TEST_TEXTS = 3080


@pytest.fixture
def runner() -> CliRunner:
    """A runner with a 200-column console, so Rich keeps each message on one line."""
    return CliRunner(env={"COLUMNS": "200"})


def _flat(text: str) -> str:
    """Join the lines Rich wrapped at the console width back into one line."""
    return " ".join(text.split())


@pytest.mark.usefixtures("data_dir")
def test_demo_trains_reports_and_promotes(runner: CliRunner) -> None:
    """The sampled demo prints the test report and leaves a production version 1.

    Given the public data folder and an empty home.
    When `diptych demo --sample 200` runs.
    Then it exits 0 and prints the report on the full test split with its accuracy.
    It also registers `banking77-intent@1` in production under the home.
    The checks share one test because the run takes about a minute.
    """
    result = runner.invoke(app, ["demo", "--sample", "200"])

    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "Banking77 test split" in output
    assert "accuracy" in output.lower()
    assert f"'test': {BANKING77_TEST_TEXTS}" in output

    version = find_version(f"{INTENT_MODEL_NAME}@1")
    assert version.stage == "production"
    assert version.method == "head"
    assert len(version.label_map) == BANKING77_LABELS
    assert find_version(INTENT_MODEL_NAME).version == 1
    assert Path(version.path).is_relative_to(get_settings().home.resolve())


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
