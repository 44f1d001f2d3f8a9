"""UTC time helpers: bucket edges and aware datetimes from any database backend."""

from __future__ import annotations

import datetime as dt

__all__ = ["GRANULARITIES", "as_utc", "bucket_start", "parse_granularity", "utcnow"]

# Bucket widths in seconds. Edges are multiples of the width since the Unix
# epoch, so they fall on UTC minutes, hours and midnights.
GRANULARITIES: dict[str, int] = {"5m": 300, "1h": 3600, "1d": 86_400}


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Return `value` as an aware UTC datetime; naive values (as SQLite returns them) are UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def parse_granularity(granularity: str) -> int:
    """Return the width in seconds of `granularity`.

    Raises:
        ValueError: `granularity` is not one of `GRANULARITIES`.
    """
    try:
        return GRANULARITIES[granularity]
    except KeyError:
        raise ValueError(
            f"invalid bucket {granularity!r}: use one of {sorted(GRANULARITIES)}"
        ) from None


def bucket_start(value: dt.datetime, granularity: str) -> dt.datetime:
    """Return the start of the `granularity` bucket that contains `value`, in UTC."""
    width = parse_granularity(granularity)
    seconds = int(as_utc(value).timestamp())
    return dt.datetime.fromtimestamp(seconds - seconds % width, dt.UTC)
