"""Trend charts: negative share and mean score above, mentions per label below, as PNG."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import warnings
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager
from matplotlib.figure import Figure

from services.sentiment.store import BucketCounts

__all__ = ["render_trend_png"]

_COLORS = {"positive": "#2e7d32", "neutral": "#9e9e9e", "negative": "#c62828"}
# Fonts with Chinese glyphs that Debian and other systems commonly install; the
# first one found is used after DejaVu Sans for the characters DejaVu lacks.
_CJK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "SimHei")


def _font_families() -> list[str]:
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *[name for name in _CJK_FONTS if name in installed]]


def render_trend_png(
    series: Sequence[tuple[dt.datetime, BucketCounts]],
    *,
    title: str,
    timezone: str = "UTC",
    width_px: int = 900,
    height_px: int = 480,
) -> bytes:
    """Render an entity's bucket series as a PNG image.

    Args:
        series: (bucket start in UTC, counts) pairs, oldest first.
        title: The chart title. Chinese text needs a CJK font on the machine
            (for example Debian's fonts-wqy-microhei); without one, characters
            the fonts lack are drawn as empty boxes.
        timezone: IANA name of the zone the time axis is shown in.
        width_px: Image width in pixels (at 100 dpi).
        height_px: Image height in pixels.

    Returns:
        The PNG bytes.
    """
    zone = ZoneInfo(timezone)
    with warnings.catch_warnings(), matplotlib.rc_context({"font.family": _font_families()}):
        # A missing glyph is drawn as a box; it must not fail the chart.
        warnings.filterwarnings(
            "ignore", message="Glyph .* missing from font", category=UserWarning
        )
        return _render(
            series, title=title, zone=zone, timezone=timezone, size=(width_px, height_px)
        )


def _render(
    series: Sequence[tuple[dt.datetime, BucketCounts]],
    *,
    title: str,
    zone: ZoneInfo,
    timezone: str,
    size: tuple[int, int],
) -> bytes:
    width_px, height_px = size
    figure = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    times = [start.astimezone(zone) for start, _counts in series]
    counts = [item for _start, item in series]
    top.plot(times, [c.negative_share for c in counts], color=_COLORS["negative"], marker=".")
    top.set_ylabel("negative share")
    top.set_ylim(0, 1)
    score_axis = top.twinx()
    score_axis.plot(times, [c.mean_score for c in counts], color="#1565c0", marker=".")
    score_axis.set_ylabel("mean score")
    score_axis.set_ylim(-1, 1)
    base = [0] * len(counts)
    for label in ("negative", "neutral", "positive"):
        heights = [getattr(c, label) for c in counts]
        bottom.bar(
            times, heights, bottom=base, color=_COLORS[label], label=label, width=_bar_width(times)
        )
        base = [b + h for b, h in zip(base, heights, strict=True)]
    bottom.set_ylabel("mentions")
    bottom.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel(f"time ({timezone})")
    # A dollar sign would start matplotlib's math text.
    top.set_title(title.replace("$", r"\$"))
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _bar_width(times: Sequence[dt.datetime]) -> float:
    if len(times) < 2:
        return 0.03
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # Matplotlib's date unit is one day.
    return max(min(gaps) / 86_400 * 0.8, 0.001)
