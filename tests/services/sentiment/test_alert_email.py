"""Alert e-mails end to end: rules fire, notifications queue, a real SMTP server receives them."""

from __future__ import annotations

import datetime as dt
import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.sentiment.alerting import evaluate_rules
from services.sentiment.models import NotificationLogEntry
from services.sentiment.notifier import plan_notifications
from services.sentiment.rules import RuleSet
from services.sentiment.store import store_scored_items
from shared.notify import deliver_due_messages
from shared.settings import reset_settings
from shared.storage import dispose_engine, session_scope
from tests._smtp import SmtpServer
from tests.services.sentiment.conftest import make_record

T0 = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
SURGE_HOUR = 30

RULES = RuleSet.model_validate(
    {
        "group_wait_s": 30,
        "group_interval_s": 300,
        "repeat_interval_s": 3600,
        "rules": [
            {
                "name": "negative-surge",
                "kind": "negative_share_surge",
                "bucket": "1h",
                "min_volume": 3,
                "threshold_sd": 2.0,
                "baseline_buckets": 24,
                "min_baseline_buckets": 5,
                "min_spread": 0.05,
                "severity": "critical",
            }
        ],
    }
)


@pytest.fixture
def alert_setup(
    sentiment_db: str, smtp_server: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SmtpServer:
    """Chinese aliases, two recipients (Chinese and English) and the console URL."""
    aliases = tmp_path / "aliases.csv"
    aliases.write_text(
        "symbol,name,aliases\n600519,贵州茅台,贵州茅台|茅台\n601318,中国平安,中国平安\n",
        encoding="utf-8",
    )
    recipients = [
        {
            "address": "wang@example.com",
            "name": "王经理",
            "language": "zh_CN",
            "timezone": "Asia/Shanghai",
        },
        {"address": "risk@example.com", "name": "Risk Desk", "language": "en"},
    ]
    monkeypatch.setenv("DIPTYCH_SENTIMENT__ALIASES_FILE", str(aliases))
    monkeypatch.setenv("DIPTYCH_SENTIMENT__RECIPIENTS", json.dumps(recipients))
    monkeypatch.setenv("DIPTYCH_SENTIMENT__CONSOLE_URL", "https://console.example.com")
    reset_settings()
    return smtp_server


def _store_surge(entity: str, surge_hour: int = SURGE_HOUR) -> None:
    records = []
    for hour in range(surge_hour + 3):
        at = T0 + hour * HOUR + dt.timedelta(minutes=5)
        labels = ["negative"] * 5 + ["positive"] if hour == surge_hour else ["positive"] * 4
        for index, label in enumerate(labels):
            text = f"{entity} 股价暴跌 {hour}-{index}" if label == "negative" else None
            records.append(
                make_record(f"{entity}-{hour}-{index}", at, entity=entity, label=label, text=text)
            )
    with session_scope() as session:
        store_scored_items(session, records)


def _fire(now: dt.datetime, until_hour: int = SURGE_HOUR + 1) -> None:
    with session_scope() as session:
        report = evaluate_rules(session, RULES, until=T0 + until_hour * HOUR, now=now)
    assert report.fired >= 1


def _plan(now: dt.datetime) -> int:
    with session_scope() as session:
        return plan_notifications(session, RULES, now=now).notifications


def _by_recipient(server: SmtpServer) -> dict[str, EmailMessage]:
    return {
        str(message["To"].addresses[0].addr_spec): message for message in server.handler.parsed()
    }


def test_chinese_subject_chart_and_entity(alert_setup: SmtpServer) -> None:
    """A Chinese recipient's subject decodes to exactly the Chinese text, with the chart inline."""
    # Given a firing surge for 贵州茅台
    _store_surge("600519")
    now = dt.datetime.now(dt.UTC)
    _fire(now)

    # When the group wait has passed and the outbox is delivered
    assert _plan(now) == 0
    assert _plan(now + dt.timedelta(seconds=31)) == 1
    assert deliver_due_messages(now=now + dt.timedelta(seconds=31)).sent == 2

    # Then each recipient got one message in their language
    received = _by_recipient(alert_setup)
    chinese = received["wang@example.com"]
    assert chinese["Subject"] == "[严重] 情绪警报：贵州茅台 (600519)"
    assert chinese["To"].addresses[0].display_name == "王经理"
    assert chinese["From"].addresses[0].display_name == "风险监控"
    assert (
        received["risk@example.com"]["Subject"] == "[critical] Sentiment alert: 贵州茅台 (600519)"
    )
    raw_headers = alert_setup.handler.messages[0][2].split(b"\r\n\r\n")[0]
    assert b"=?utf-8?" in raw_headers
    assert "贵州茅台".encode() not in raw_headers


def test_email_parts_chart_items_and_links(alert_setup: SmtpServer) -> None:
    """The e-mail has text and HTML parts, the PNG chart by Content-ID, items and links."""
    _store_surge("600519")
    now = dt.datetime.now(dt.UTC)
    _fire(now)
    _plan(now + dt.timedelta(seconds=31))
    deliver_due_messages(now=now + dt.timedelta(seconds=31))
    message = _by_recipient(alert_setup)["wang@example.com"]

    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    chart = images[0]
    assert chart.get_content().startswith(b"\x89PNG")
    assert f'src="cid:{chart["Content-ID"].strip("<>")}"' in html
    assert "实体：贵州茅台 (600519)" in text
    assert "负面占比激增" in text
    assert "600519 股价暴跌 30-0" in text
    assert "https://console.example.com/sentiment/entities/600519" in text
    assert "https://console.example.com/sentiment/entities/600519" in html


def test_outage_then_restart_delivers_each_once(alert_setup: SmtpServer) -> None:
    """With the server down and the process restarted, every alert arrives exactly once."""
    # Given two entities firing and the mail server down
    _store_surge("600519")
    _store_surge("601318")
    now = dt.datetime.now(dt.UTC)
    _fire(now)
    alert_setup.stop()
    later = now + dt.timedelta(seconds=31)
    assert _plan(later) == 2
    assert deliver_due_messages(now=later).retried == 4

    # When the process restarts (new engine, settings read again) and plans again
    dispose_engine()
    reset_settings()
    assert _plan(later + dt.timedelta(seconds=60)) == 0
    alert_setup.start()
    first = deliver_due_messages(now=later + dt.timedelta(minutes=10))
    second = deliver_due_messages(now=later + dt.timedelta(minutes=20))

    # Then every queued e-mail arrived once
    assert first.sent == 4
    assert second.sent == 0
    pairs = sorted(
        (message["To"].addresses[0].addr_spec, message["Subject"])
        for message in alert_setup.handler.parsed()
    )
    assert len(pairs) == len(set(pairs)) == 4
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(NotificationLogEntry)) == 2
