"""The Redis Stream of items: publish, consume in micro-batches, claim, dead-letter, watch.

Workers read through one consumer group (XREADGROUP), so each entry goes to
one consumer. A batch is acknowledged (XACK) only after its items are
committed. An entry whose consumer died stays pending, and another consumer
claims it (XAUTOCLAIM) once it has been idle for `claim_idle_ms`. An entry
delivered `max_deliveries` times without success goes to the dead-letter
stream with its last error and is acknowledged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from shared.errors import ConfigurationError
from shared.settings import SentimentSettings, get_settings

__all__ = [
    "ITEM_FIELD",
    "BatchOutcome",
    "StreamConsumer",
    "StreamEntry",
    "connect_redis",
    "ensure_group",
    "find_done_time",
    "publish_items",
]

logger = logging.getLogger(__name__)

ITEM_FIELD = "item"
# Seconds between two watchdog checks of the stream's newest entry.
_WATCH_INTERVAL_S = 5.0


@dataclass(frozen=True)
class StreamEntry:
    """One stream entry as a consumer received it."""

    entry_id: str
    fields: Mapping[str, str]
    deliveries: int = 1


@dataclass
class BatchOutcome:
    """The result of a batch: entries to acknowledge, to dead-letter, or to leave pending."""

    done: list[str] = field(default_factory=list)
    dead: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    stored: int = 0


def connect_redis(url: str | None = None) -> redis.Redis:
    """Return a client for `url`, or for the configured `redis_url` (else `broker_url`).

    Raises:
        ConfigurationError: No Redis URL is configured.
    """
    settings = get_settings()
    url = url or settings.redis_url or settings.broker_url
    if not url:
        raise ConfigurationError(
            "the sentiment stream needs Redis: set DIPTYCH_REDIS_URL (or DIPTYCH_BROKER_URL), "
            "e.g. redis://127.0.0.1:6379/0"
        )
    return redis.Redis.from_url(url, decode_responses=True)


def publish_items(
    client: redis.Redis, payloads: Sequence[Mapping[str, Any] | str], *, stream: str
) -> list[str]:
    """Append items to the stream in order, one entry each; return the entry ids.

    Args:
        client: The Redis client.
        payloads: Items as dicts (serialised to JSON) or as raw JSON text.
        stream: The stream key.
    """
    pipeline = client.pipeline(transaction=False)
    for payload in payloads:
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        pipeline.xadd(stream, {ITEM_FIELD: text})
    return [str(entry_id) for entry_id in pipeline.execute()]


def ensure_group(client: redis.Redis, *, stream: str, group: str) -> None:
    """Create the consumer group, reading from the start, and the stream unless they exist."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def find_done_time(client: redis.Redis, *, stream: str, group: str) -> dt.datetime | None:
    """Return the published time of the newest entry before which every entry is acknowledged.

    Returns None when the stream does not exist yet, the group has finished no
    entry yet, or the entry cannot be read.
    """
    if not client.exists(stream):
        # Consumers create the stream with their group, so a fresh deployment has none.
        return None
    groups = {entry["name"]: entry for entry in client.xinfo_groups(stream)}
    info = groups.get(group)
    if info is None:
        return None
    frontier_end = str(info["last-delivered-id"])
    if int(info.get("pending") or 0) > 0:
        summary = client.xpending(stream, group)
        frontier_end = "(" + str(summary["min"])
    else:
        frontier_end = frontier_end if frontier_end != "0-0" else ""
    if not frontier_end:
        return None
    rows: Any = client.xrevrange(stream, max=frontier_end, min="-", count=20)
    for _entry_id, fields in rows:
        published = _published_time(fields)
        if published is not None:
            return published
    return None


def _published_time(fields: Mapping[str, str]) -> dt.datetime | None:
    try:
        value = json.loads(fields[ITEM_FIELD])["published_at"]
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


class StreamConsumer:
    """One consumer of the group: reads micro-batches, hands them to `process`, acknowledges."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        name: str,
        process: Callable[[list[StreamEntry]], BatchOutcome],
        settings: SentimentSettings | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.process = process
        self.settings = settings or get_settings().sentiment
        self.stream = self.settings.stream
        self.group = self.settings.group
        self.errors_key = f"{self.stream}:errors"
        self.quiet_key = f"{self.stream}:quiet-periods"
        self.stored = 0
        self.batches = 0
        self.dead_lettered = 0
        self._last_watch = 0.0
        self._is_quiet = False
        ensure_group(client, stream=self.stream, group=self.group)

    def run(
        self, *, stop: threading.Event | None = None, exit_when_idle_s: float | None = None
    ) -> None:
        """Consume until `stop` is set, or until nothing arrived for `exit_when_idle_s` seconds."""
        stop = stop or threading.Event()
        idle_since = time.monotonic()
        logger.info(
            "consumer started stream=%s group=%s name=%s", self.stream, self.group, self.name
        )
        while not stop.is_set():
            handled = self.run_once()
            now = time.monotonic()
            if handled:
                idle_since = now
            elif exit_when_idle_s is not None and now - idle_since >= exit_when_idle_s:
                break
            self._watch()
        logger.info(
            "consumer stopped name=%s batches=%d stored=%d dead_lettered=%d",
            self.name,
            self.batches,
            self.stored,
            self.dead_lettered,
        )

    def run_once(self) -> int:
        """Read, process and acknowledge one micro-batch; return how many entries it held."""
        entries = self.claim_stale() or self.read_batch()
        if not entries:
            return 0
        exhausted = [e for e in entries if e.deliveries > self.settings.max_deliveries]
        fresh = [e for e in entries if e.deliveries <= self.settings.max_deliveries]
        outcome = self.process(fresh) if fresh else BatchOutcome()
        for entry in exhausted:
            error = str(self.client.hget(self.errors_key, entry.entry_id) or "unknown error")
            outcome.dead[entry.entry_id] = (
                f"failed {entry.deliveries - 1} times; last error: {error}"
            )
        self._finish(entries, outcome)
        return len(entries)

    def read_batch(self) -> list[StreamEntry]:
        """Read up to `batch_size` new entries, waiting up to `batch_wait_ms` to fill the batch."""
        wanted = self.settings.batch_size
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        entries: list[StreamEntry] = []
        while len(entries) < wanted:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            response: Any = self.client.xreadgroup(
                self.group,
                self.name,
                {self.stream: ">"},
                count=wanted - len(entries),
                block=remaining_ms,
            )
            if not response:
                break
            for _stream, rows in response:
                entries += [StreamEntry(str(i), dict(f or {})) for i, f in rows]
        return entries

    def claim_stale(self) -> list[StreamEntry]:
        """Claim entries idle longer than `claim_idle_ms` (their consumer died or failed them)."""
        response: Any = self.client.xautoclaim(
            self.stream,
            self.group,
            self.name,
            min_idle_time=self.settings.claim_idle_ms,
            start_id="0-0",
            count=self.settings.batch_size,
        )
        rows = response[1]
        deleted = response[2] if len(response) > 2 else []
        if deleted:
            self.client.xack(self.stream, self.group, *deleted)
        if not rows:
            return []
        ids = [str(entry_id) for entry_id, _fields in rows]
        deliveries = self._delivery_counts(ids)
        logger.info("consumer claimed name=%s entries=%d", self.name, len(rows))
        return [
            StreamEntry(str(entry_id), dict(fields or {}), deliveries.get(str(entry_id), 1))
            for entry_id, fields in rows
        ]

    def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        pending = self.client.xpending_range(
            self.stream,
            self.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) * 4 + 10,
            consumername=self.name,
        )
        return {str(row["message_id"]): int(row["times_delivered"]) for row in pending}

    def _finish(self, entries: list[StreamEntry], outcome: BatchOutcome) -> None:
        by_id = {entry.entry_id: entry for entry in entries}
        pipeline = self.client.pipeline(transaction=True)
        for entry_id, error in outcome.dead.items():
            fields = dict(by_id[entry_id].fields)
            fields.update(
                {
                    "error": error[:2000],
                    "source_entry": entry_id,
                    "deliveries": str(by_id[entry_id].deliveries),
                    "consumer": self.name,
                }
            )
            pipeline.xadd(self.settings.dead_letter_stream, fields)  # type: ignore[arg-type]
        for entry_id, error in outcome.failed.items():
            pipeline.hset(self.errors_key, entry_id, error[:2000])
        acknowledged = outcome.done + list(outcome.dead)
        if acknowledged:
            pipeline.xack(self.stream, self.group, *acknowledged)
            pipeline.hdel(self.errors_key, *acknowledged)
        pipeline.execute()
        self.batches += 1
        self.stored += outcome.stored
        self.dead_lettered += len(outcome.dead)
        for entry_id, error in outcome.dead.items():
            logger.error("entry dead-lettered id=%s error=%s", entry_id, error[:300])
        for entry_id, error in outcome.failed.items():
            logger.warning("entry failed, left pending id=%s error=%s", entry_id, error[:300])

    def _watch(self) -> None:
        now = time.monotonic()
        if now - self._last_watch < _WATCH_INTERVAL_S:
            return
        self._last_watch = now
        info = self.client.xinfo_stream(self.stream)
        last_id = str(info.get("last-generated-id") or "0-0")
        last_ms = int(last_id.split("-")[0])
        if last_ms == 0:
            # A stream that never held an entry has the id 0-0, which is no time.
            return
        quiet_s = time.time() - last_ms / 1000
        if quiet_s >= self.settings.quiet_after_s and not self._is_quiet:
            self._is_quiet = True
            count = self.client.incr(self.quiet_key)
            logger.warning(
                "stream quiet stream=%s seconds_since_last_entry=%.0f quiet_periods=%d; "
                "check the producers",
                self.stream,
                quiet_s,
                count,
            )
        elif quiet_s < self.settings.quiet_after_s and self._is_quiet:
            self._is_quiet = False
            logger.info("stream active again stream=%s", self.stream)
