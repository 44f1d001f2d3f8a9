"""Web console: page and API latency over loopback HTTP, sign-in cost, streamed drafts.

Usage:
    python tests/benchmarks/bench_console.py [--stages pages,stream] [--home DIR]
        [--tickets 5000] [--requests 200]

The console runs under uvicorn on 127.0.0.1 in this process (SQLite under
--home) and is measured with httpx over a real socket, one request at a time.

Stages:
    pages   --tickets stored tickets (Bitext requests, cleaned and masked, no
            models needed). Each route gets p50/p95 over --requests requests
            after 5 warm-up requests. The queue page (100 newest rows) is
            compared with the JSON list of the same 100 tickets, which runs
            the same query without HTML, and a ticket page with its JSON
            detail. The authentication cost compares /healthz (public) with
            /api/v1/console/me signed in by API token and by session cookie.
            Sign-in (argon2id verify plus the session row): p50 over 20.
    stream  The default drafter (SmolLM2-135M-Instruct) writes a reply for 10
            Bitext tickets through /support/tickets/<id>/draft/stream: time to
            the first `piece` event (what the agent waits for before text
            appears) against time to the `done` event (what a non-streamed
            page would wait for), medians.
Rows go to ``tests/benchmarks/results/console.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.benchmarks._results import write_rows  # noqa: E402

RESULT_NAME = "console"
COMMAND = "python tests/benchmarks/bench_console.py --stages {stage}"
PASSWORD = "benchmark-password"
WARM_UP = 5


def main() -> None:
    """Run the chosen stages and write their rows."""
    args = _parse_args()
    os.environ["DIPTYCH_HOME"] = str(args.home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    from pipelines.datasets import read_bitext, resolve_data_dir
    from services.console.auth import create_api_token, create_user
    from shared.storage import upgrade_database
    from tests.services.console.live import serve_console

    upgrade_database()
    create_user("bench-agent", PASSWORD, role="agent")
    token = create_api_token("bench-agent", name="bench")
    texts = [example.text for example in read_bitext(resolve_data_dir())]
    rows: list[dict[str, Any]] = []
    with serve_console() as url:
        if "pages" in args.stages:
            rows += _bench_pages(url, token, texts[: args.tickets], n_requests=args.requests)
        if "stream" in args.stages:
            rows += _bench_stream(url, texts[-10:])
    _print(rows)
    print(f"rows written to {write_rows(RESULT_NAME, rows)}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default="pages,stream", help="comma-separated stages")
    parser.add_argument(
        "--home", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-console-"))
    )
    parser.add_argument(
        "--tickets", type=int, default=5000, help="tickets stored for `pages`; Bitext has 4,514"
    )
    parser.add_argument("--requests", type=int, default=200, help="timed requests per route")
    args = parser.parse_args()
    args.stages = set(args.stages.split(","))
    return args


def _store_tickets(texts: list[str]) -> list[int]:
    from rich.progress import track

    from services.support.pipeline import store_ticket
    from services.support.schemas import TicketCreate

    return [
        store_ticket(TicketCreate(text=text)).ticket_id
        for text in track(texts, description="storing tickets")
    ]


def _signed_in_client(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=120)
    client.get("/login")
    client.post(
        "/login",
        data={
            "username": "bench-agent",
            "password": PASSWORD,
            "csrf_token": client.cookies.get("diptych_csrf") or "",
        },
    )
    return client


def _latency_ms(call: Callable[[], httpx.Response], n_requests: int) -> tuple[float, float]:
    for _ in range(WARM_UP):
        call().raise_for_status()
    times = []
    for _ in range(n_requests):
        started = time.perf_counter()
        call().raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def _row(name: str, stage: str, p50: float, p95: float, baseline_p50: float) -> dict[str, Any]:
    return {
        "name": name,
        "p50_ms": round(p50, 2),
        "p95_ms": round(p95, 2),
        "ratio_vs_baseline": round(p50 / baseline_p50, 2),
        "command": COMMAND.format(stage=stage),
    }


def _bench_pages(
    url: str, token: str, texts: list[str], *, n_requests: int
) -> list[dict[str, Any]]:
    ids = _store_tickets(texts)
    session = _signed_in_client(url)
    bearer = httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"})
    anonymous = httpx.Client(base_url=url, timeout=120)
    ticket = ids[len(ids) // 2]
    measured = {
        "api-list": _latency_ms(
            lambda: bearer.get("/api/v1/support/tickets?limit=100"), n_requests
        ),
        "queue-page": _latency_ms(lambda: session.get("/support"), n_requests),
        "api-ticket": _latency_ms(
            lambda: bearer.get(f"/api/v1/support/tickets/{ticket}"), n_requests
        ),
        "ticket-page": _latency_ms(lambda: session.get(f"/support/tickets/{ticket}"), n_requests),
        "healthz": _latency_ms(lambda: anonymous.get("/healthz"), n_requests),
        "me-token": _latency_ms(lambda: bearer.get("/api/v1/console/me"), n_requests),
        "me-session": _latency_ms(lambda: session.get("/api/v1/console/me"), n_requests),
    }
    sign_ins = []
    for _ in range(20):
        started = time.perf_counter()
        _signed_in_client(url).close()
        sign_ins.append((time.perf_counter() - started) * 1000)
    rows = [
        _row(
            f"queue-page-{len(ids)}-tickets",
            "pages",
            *measured["queue-page"],
            measured["api-list"][0],
        ),
        _row(
            f"api-list-{len(ids)}-tickets", "pages", *measured["api-list"], measured["api-list"][0]
        ),
        _row("ticket-page", "pages", *measured["ticket-page"], measured["api-ticket"][0]),
        _row("api-ticket", "pages", *measured["api-ticket"], measured["api-ticket"][0]),
        _row("healthz-no-auth", "pages", *measured["healthz"], measured["healthz"][0]),
        _row("me-api-token", "pages", *measured["me-token"], measured["healthz"][0]),
        _row("me-session-cookie", "pages", *measured["me-session"], measured["healthz"][0]),
    ]
    rows.append(
        {
            "name": "sign-in",
            "p50_ms": round(statistics.median(sign_ins), 1),
            "command": COMMAND.format(stage="pages"),
        }
    )
    return rows


def _bench_stream(url: str, texts: list[str]) -> list[dict[str, Any]]:
    from services.support.pipeline import store_ticket
    from services.support.schemas import TicketCreate

    client = _signed_in_client(url)
    first_piece, done, pieces = [], [], []
    for text in texts:
        # No intent model is registered in this home, so the drafter gets no intent.
        ticket_id = store_ticket(TicketCreate(text=text)).ticket_id
        started = time.perf_counter()
        first = None
        count = 0
        with client.stream("GET", f"/support/tickets/{ticket_id}/draft/stream") as response:
            for line in response.iter_lines():
                if line == "event: piece":
                    count += 1
                    first = first or time.perf_counter() - started
                elif line == "event: done":
                    done.append(time.perf_counter() - started)
        first_piece.append(first if first is not None else float("nan"))
        pieces.append(count)
    # The first draft also loads (and may convert) the drafter; it is left out.
    first_ms = statistics.median(first_piece[1:]) * 1000
    done_ms = statistics.median(done[1:]) * 1000
    return [
        {
            "name": "draft-stream-first-piece",
            "p50_ms": round(first_ms, 1),
            "ratio_vs_baseline": round(first_ms / done_ms, 3),
            "pieces_per_draft": statistics.median(pieces[1:]),
            "command": COMMAND.format(stage="stream"),
        },
        {
            "name": "draft-stream-done",
            "p50_ms": round(done_ms, 1),
            "ratio_vs_baseline": 1.0,
            "command": COMMAND.format(stage="stream"),
        },
    ]


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'row':32} {'p50 ms':>10} {'p95 ms':>10} {'ratio':>8}")
    for row in rows:
        print(
            f"{row['name']:32} {row.get('p50_ms', ''):>10} {row.get('p95_ms', ''):>10} "
            f"{row.get('ratio_vs_baseline', ''):>8}"
        )


if __name__ == "__main__":
    main()
