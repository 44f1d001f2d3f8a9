"""Prometheus metrics of the console: requests by route and status, their latency, sign-ins.

Each app gets its own registry, so building several apps in one process (the
tests do) never registers a metric twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.responses import Response

from services.console.security import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ConsoleMetrics", "MetricsMiddleware", "QueueCollector", "metrics_response"]

logger = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Report each Celery queue's waiting and dead-lettered messages, read at scrape time.

    The autoscaling rules in deploy/k8s scale each worker Deployment on
    ``diptych_queue_length``. In the embedded layout (no broker) it reports nothing.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from shared.worker.monitor import read_queue_stats

        waiting = GaugeMetricFamily(
            "diptych_queue_length", "Task messages waiting in each queue.", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            "diptych_queue_dead_letters",
            "Task messages moved to each queue's dead-letter list.",
            labels=["queue"],
        )
        try:
            stats = read_queue_stats()
        except redis.RedisError as exc:
            logger.warning("queue lengths not read for /metrics: %r", exc)
            stats = []
        for row in stats:
            waiting.add_metric([row.queue], row.waiting)
            dead.add_metric([row.queue], row.dead_letters)
        yield waiting
        yield dead


class ConsoleMetrics:
    """The console's metric families, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "diptych_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "diptych_http_request_duration_seconds",
            "Time from request to the end of the response body, by method and route template.",
            ("method", "route"),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "diptych_http_requests_in_flight",
            "Requests being answered now, streams included.",
            registry=self.registry,
        )
        self.sign_ins = Counter(
            "diptych_console_sign_ins",
            "Sign-in attempts by outcome: ok, failed or throttled.",
            ("outcome",),
            registry=self.registry,
        )
        self.registry.register(QueueCollector())


def _route_label(scope: Scope) -> str:
    """Return the full template of the matched route, include-time prefixes and all."""
    # Since FastAPI 0.137, `include_router` no longer copies routes with the prefix
    # applied: `scope["route"]` is the route as its own router declared it
    # ("/support/tickets/{ticket_id}" for "/api/v1/support/tickets/{ticket_id}"),
    # and only FastAPI's effective route context contains the full template.
    context = scope.get("fastapi", {}).get("effective_route_context")
    route = scope.get("route")
    for candidate in (context, route):
        path = getattr(candidate, "path_format", None) or getattr(candidate, "path", None)
        if path:
            return str(path)
    # Unmatched paths are not labelled by their text, which a client chooses freely.
    return "unmatched"


class MetricsMiddleware:
    """Count and time every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ConsoleMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: dict[str, Any] = {"code": 500}

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.in_flight.dec()
            route = _route_label(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(status["code"])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def metrics_response(metrics: ConsoleMetrics) -> Response:
    """Return the metrics in the Prometheus text format."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
