"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import socket

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.console.app import create_app
from shared.settings import reset_settings
from tests.services.console.conftest import ConsoleUsers, sign_in
from tests.services.support.conftest import SupportModels


def test_healthz_answers_without_sign_in(console_app: FastAPI) -> None:
    assert TestClient(console_app).get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_a_missing_model(console_app: FastAPI) -> None:
    """Without a production intent model the console is alive but not ready."""
    response = TestClient(console_app).get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"]["mode"] == "in-process"
    assert body["checks"]["models:support"]["ok"] is False
    assert "support-intent" in body["checks"]["models:support"]["error"]


def test_readyz_is_ready_with_models(
    support_env: SupportModels, console_users: ConsoleUsers
) -> None:
    response = TestClient(create_app()).get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["models:support"]["intent_model"] == "support-intent@1"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_readyz_reports_a_broker_that_is_down(
    console_users: ConsoleUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIPTYCH_BROKER_URL", f"redis://127.0.0.1:{_closed_port()}/3")
    reset_settings()
    body = TestClient(create_app()).get("/readyz").json()
    assert body["ready"] is False
    assert body["checks"]["broker"]["ok"] is False
    assert "ConnectionError" in body["checks"]["broker"]["error"]


def test_readyz_pings_a_running_broker(
    console_users: ConsoleUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIPTYCH_BROKER_URL", "redis://127.0.0.1:6379/3")
    reset_settings()
    body = TestClient(create_app()).get("/readyz").json()
    assert body["checks"]["broker"] == {"ok": True, "mode": "celery"}


def test_metrics_count_requests_by_route_template(console_app: FastAPI) -> None:
    """Route templates, not raw paths, label the series, so ids do not multiply them."""
    client = TestClient(console_app)
    sign_in(client, "root")
    client.get("/models/x/1/images/confusion_matrix.png")
    client.get("/models/y/2/images/confusion_matrix.png")
    text = client.get("/metrics").text
    assert (
        'diptych_http_requests_total{method="GET",route="/models/{name}/{version}/images/{image}",'
        'status="404"} 2.0' in text
    )
    assert 'diptych_console_sign_ins_total{outcome="ok"} 1.0' in text
    assert "diptych_http_request_duration_seconds_bucket" in text


def test_metrics_label_api_routes_with_their_prefix(console_app: FastAPI) -> None:
    """An API route and a page route of the same shape are separate series."""
    client = TestClient(console_app)
    sign_in(client, "root")
    client.get("/support/tickets/999")
    client.get("/api/v1/support/tickets/999")
    client.get("/api/v1/support/tickets/998")
    client.get("/api/v1/console/me")
    text = client.get("/metrics").text
    series = 'diptych_http_requests_total{{method="GET",route="{route}",status="{status}"}} {count}'
    assert series.format(route="/support/tickets/{ticket_id}", status=404, count=1.0) in text
    assert series.format(route="/api/v1/support/tickets/{ticket_id}", status=404, count=2.0) in text
    assert series.format(route="/api/v1/console/me", status=200, count=1.0) in text
    assert 'route="/console/me"' not in text


def test_metrics_report_queue_lengths(
    console_users: ConsoleUsers, celery_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a broker, /metrics carries each queue's waiting messages for the autoscaler."""
    from shared.worker import create_celery_app

    monkeypatch.setenv("DIPTYCH_BROKER_URL", celery_redis_url)
    reset_settings()
    producer = create_celery_app()
    for ticket_id in range(2):
        producer.send_task("support.triage", args=(ticket_id,))
    text = TestClient(create_app()).get("/metrics").text

    assert 'diptych_queue_length{queue="support"} 2.0' in text
    assert 'diptych_queue_length{queue="sentiment"} 0.0' in text
    assert 'diptych_queue_dead_letters{queue="support"} 0.0' in text
