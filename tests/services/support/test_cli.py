"""`diptych support`: knowledge base, tickets, ask and feedback export from the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pipelines.cli import app
from services.support.feedback import record_feedback
from services.support.schemas import FeedbackCreate
from tests.services.support.conftest import SupportModels


@pytest.fixture
def runner() -> CliRunner:
    """A CLI runner with a wide terminal."""
    return CliRunner(env={"COLUMNS": "200"})


def _invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_support_commands_from_knowledge_base_to_export(
    support_env: SupportModels, runner: CliRunner, tmp_path: Path
) -> None:
    """Import articles, submit and import tickets, ask, and export feedback."""
    kb = tmp_path / "kb.md"
    kb.write_text(
        "# Cancel an order\nIntent: cancel_order\n\nOpen {{Order Page}} and press Cancel.\n\n"
        "# 找回密码\nIntent: recover_password\n\n在登录页点击“忘记密码”，按提示重置。\n",
        encoding="utf-8",
    )
    imported = _invoke(runner, "support", "import-kb", "--file", str(kb))
    assert imported.exit_code == 0, imported.output
    assert "Articles added: 2" in imported.output

    submitted = _invoke(runner, "support", "submit", "please cancel my order, mail a@b.co")
    assert submitted.exit_code == 0, submitted.output
    assert "[EMAIL_1]" in submitted.output
    assert "a@b.co" not in submitted.output
    assert "cancel_order" in submitted.output

    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        json.dumps({"id": "t-1", "text": "I forgot my password"}) + "\n"
        "{broken\n" + json.dumps({"id": "t-2", "text": "<br>"}) + "\n",
        encoding="utf-8",
    )
    result = _invoke(runner, "support", "import-tickets", str(tickets), "--id-column", "id")
    assert result.exit_code == 0, result.output
    assert "Tickets stored: 1, already known: 0, refused: 2." in result.output
    assert "line 2" in result.output
    assert "line 3" in result.output

    asked = _invoke(runner, "support", "ask", "How do I cancel my order?", "--no-stream")
    assert asked.exit_code == 0, asked.output
    assert "Intent: cancel_order" in asked.output
    assert "Open {{Order Page}}" in asked.output

    record_feedback(1, FeedbackCreate(action="accept"), agent="amy")
    exported = _invoke(runner, "support", "export-feedback", "--output", str(tmp_path / "out"))
    assert exported.exit_code == 0, exported.output
    rows = (tmp_path / "out" / "intents.jsonl").read_text().splitlines()
    assert json.loads(rows[0])["label"] == "cancel_order"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_support_commands_report_bad_input(
    support_env: SupportModels, runner: CliRunner, tmp_path: Path
) -> None:
    """Bad options and files end with one clear error line and exit code 2."""
    neither = _invoke(runner, "support", "import-kb")
    assert neither.exit_code == 2
    assert "exactly one of --dataset and --file" in neither.output
    missing = _invoke(runner, "support", "import-kb", "--file", str(tmp_path / "none.md"))
    assert missing.exit_code == 2
    assert "is not a file" in missing.output
    empty = _invoke(runner, "support", "submit", "<p> </p>")
    assert empty.exit_code == 2
    assert "empty" in empty.output
    no_index = _invoke(runner, "support", "ask", "hello")
    assert no_index.exit_code == 2
    assert "import-kb" in no_index.output
    unknown = _invoke(runner, "support", "show", "999")
    assert unknown.exit_code == 2
    assert "999" in unknown.output
