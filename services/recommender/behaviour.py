"""In-memory catalogue and interaction log, and the rule that turns ratings into likes.

Everything downstream (features, profiles, candidates, evaluation) works on these
numpy-backed containers, so the same code serves MovieLens files, the database
and synthetic benchmark data.

Preference rule: an interaction of kind ``rating`` is a like when its value is at
least `RecommenderSettings.like_threshold` (4.0 stars by default) and a dislike
when it is at most `dislike_threshold` (2.0); ratings in between are neutral.
Kinds ``like``, ``click``, ``view`` and ``purchase`` are likes, ``dislike`` is a
dislike. Every interaction, whatever its preference, marks the item as seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.errors import DataError

__all__ = [
    "INTERACTION_KINDS",
    "Catalogue",
    "InteractionLog",
    "build_preferences",
]

INTERACTION_KINDS = ("rating", "like", "dislike", "click", "view", "purchase")
_POSITIVE_KINDS = ("like", "click", "view", "purchase")


@dataclass
class Catalogue:
    """Items with their ids, titles, texts, tags and creation times (Unix seconds)."""

    item_ids: np.ndarray
    titles: list[str]
    texts: list[str]
    tags: list[list[str]]
    created_at: np.ndarray

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=np.int64)
        self.created_at = np.asarray(self.created_at, dtype=np.float64)
        sizes = {len(self.item_ids), len(self.titles), len(self.texts), len(self.tags)}
        if len(sizes | {len(self.created_at)}) != 1:
            raise DataError(
                "Catalogue columns must have one entry per item, got lengths "
                f"{sorted(sizes | {len(self.created_at)})!r}."
            )
        if len(np.unique(self.item_ids)) != len(self.item_ids):
            raise DataError("Catalogue `item_ids` must be distinct; merge duplicates first.")

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows_of(self, item_ids: np.ndarray) -> np.ndarray:
        """Map item ids to row positions; unknown ids map to -1."""
        lookup = build_id_lookup(self.item_ids)
        ids = np.asarray(item_ids, dtype=np.int64)
        rows = np.full(len(ids), -1, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(lookup))
        rows[inside] = lookup[ids[inside]]
        return rows


def build_id_lookup(item_ids: np.ndarray) -> np.ndarray:
    """Return an array indexed by item id that contains the row position, or -1."""
    if not len(item_ids):
        return np.full(0, -1, dtype=np.int64)
    lookup = np.full(int(item_ids.max()) + 1, -1, dtype=np.int64)
    lookup[item_ids] = np.arange(len(item_ids))
    return lookup


@dataclass
class InteractionLog:
    """Interactions as parallel arrays, sorted by time then user then item.

    Attributes:
        users: User ids, int64.
        items: Item ids, int64.
        values: Rating values, float32; NaN where the kind carries none.
        preferences: +1 like, 0 neutral, -1 dislike (see the module docstring).
        times: Unix seconds, float64.
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    preferences: np.ndarray
    times: np.ndarray

    def __post_init__(self) -> None:
        self.users = np.asarray(self.users, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float32)
        self.preferences = np.asarray(self.preferences, dtype=np.int8)
        self.times = np.asarray(self.times, dtype=np.float64)
        lengths = {len(a) for a in (self.users, self.items, self.values, self.preferences)}
        if len(lengths | {len(self.times)}) != 1:
            raise DataError("InteractionLog arrays must all have the same length.")
        order = np.lexsort((self.items, self.users, self.times))
        if not np.array_equal(order, np.arange(len(order))):
            self._take(order)

    def __len__(self) -> int:
        return len(self.users)

    def _take(self, rows: np.ndarray) -> None:
        self.users = self.users[rows]
        self.items = self.items[rows]
        self.values = self.values[rows]
        self.preferences = self.preferences[rows]
        self.times = self.times[rows]

    def select(self, mask: np.ndarray) -> InteractionLog:
        """Return the interactions where `mask` is true, still in time order."""
        return InteractionLog(
            users=self.users[mask],
            items=self.items[mask],
            values=self.values[mask],
            preferences=self.preferences[mask],
            times=self.times[mask],
        )

    def before(self, cut: float) -> InteractionLog:
        """Return the interactions strictly earlier than `cut` (Unix seconds)."""
        return self.select(self.times < cut)

    def user_ids(self) -> np.ndarray:
        """Return the distinct user ids, ascending."""
        return np.unique(self.users)

    def group_by_user(self) -> dict[int, np.ndarray]:
        """Map each user id to the positions of their interactions, oldest first."""
        if not len(self.users):
            return {}
        order = np.argsort(self.users, kind="stable")
        users = self.users[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        return {int(users[s]): order[s:e] for s, e in zip(starts, ends, strict=True)}

    @classmethod
    def empty(cls) -> InteractionLog:
        """Return a log with no interactions."""
        return cls(
            users=np.empty(0),
            items=np.empty(0),
            values=np.empty(0),
            preferences=np.empty(0),
            times=np.empty(0),
        )


def build_preferences(
    kinds: Sequence[str],
    values: np.ndarray,
    *,
    like_threshold: float,
    dislike_threshold: float,
) -> np.ndarray:
    """Apply the preference rule of the module docstring to each interaction.

    Raises:
        DataError: If a kind is not one of `INTERACTION_KINDS` or a rating has no value.
    """
    kind_array = np.asarray(list(kinds), dtype=object)
    values = np.asarray(values, dtype=np.float32)
    unknown = sorted(set(kind_array.tolist()) - set(INTERACTION_KINDS))
    if unknown:
        raise DataError(
            f"Interaction kind {unknown[0]!r} is not supported; use one of {INTERACTION_KINDS}."
        )
    preferences = np.zeros(len(kind_array), dtype=np.int8)
    is_rating = kind_array == "rating"
    if np.isnan(values[is_rating]).any():
        raise DataError("An interaction of kind 'rating' has no value; give each rating a number.")
    preferences[is_rating & (values >= like_threshold)] = 1
    preferences[is_rating & (values <= dislike_threshold)] = -1
    preferences[np.isin(kind_array, _POSITIVE_KINDS)] = 1
    preferences[kind_array == "dislike"] = -1
    return preferences
