"""Length-bucketed batching: sort by token count so each batch pads little."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

__all__ = ["iter_length_buckets"]


def iter_length_buckets(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Yield batches of indices whose items have similar lengths.

    Items are taken longest first so that a batch too big for memory shows up
    on the first batch rather than the last.

    Args:
        lengths: Token count of each item.
        batch_size: Maximum items per batch.

    Yields:
        Lists of indices into `lengths`; every index appears exactly once.

    Raises:
        ValueError: If `batch_size` is below 1.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size!r}.")
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
