"""PNG plots of an evaluation: the confusion matrix and the training curves.

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas, so no
global backend is selected and pyplot's figure registry is never touched.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from shared.evaluation.metrics import ClassificationReport

__all__ = ["find_cjk_font", "plot_confusion_matrix", "plot_training_curves"]

logger = logging.getLogger(__name__)

# Families with Chinese glyphs, best first, matched as name prefixes.
_CJK_FONT_PREFIXES = (
    "Noto Sans CJK",
    "Noto Sans SC",
    "Source Han Sans",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing",
)
# Up to this many classes the cells are large enough to print their counts.
_MAX_ANNOTATED_CLASSES = 20
_DPI = 100
_EVAL_METRIC_KEYS = {"eval_accuracy": "accuracy", "eval_macro_f1": "macro-F1"}


@functools.cache
def find_cjk_font() -> str | None:
    """Return the name of an installed font family with CJK glyphs, or None.

    The result is cached for the process, so a font installed later is not seen.
    """
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    for prefix in _CJK_FONT_PREFIXES:
        matches = sorted(name for name in installed if name.startswith(prefix))
        if matches:
            return matches[0]
    return None


def plot_confusion_matrix(
    report: ClassificationReport,
    path: Path,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Write the report's confusion matrix as a PNG.

    The figure grows with the number of labels and the tick font shrinks, so
    77 classes stay readable. Up to 20 classes, each cell also shows its count.

    Args:
        report: The evaluation whose `confusion` and `labels` are drawn.
        path: Output file, which must end in ``.png``. Missing parent folders are created.
        normalize: Colour each cell by its share of the true label's row, so
            rare classes are as visible as common ones. False colours raw
            counts. Either way the colour scale is a square root.
        title: Figure title. The default gives the example count.

    Returns:
        `path`.

    Raises:
        ValueError: If `path` does not end in ``.png``.
    """
    target = _prepare_png_path(path)
    counts = np.asarray(report.confusion, dtype=np.int64)  # (C, C)
    colours = _row_normalize(counts) if normalize else counts.astype(np.float64)
    n_classes = len(report.labels)
    heading = title or f"Confusion matrix ({report.n_examples} examples)"
    family = _font_family([*report.labels, heading])

    side = _confusion_side_inches(n_classes)
    figure = Figure(figsize=(side + 2.5, side + 2.0), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    # A square-root scale keeps a few confusions out of 40 visible next to a dark diagonal.
    scale = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0 if normalize else max(counts.max(), 1))
    image = axes.imshow(colours, cmap="Blues", norm=scale)
    colourbar = figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02)
    colourbar.set_label("share of the true label's examples" if normalize else "examples")
    _label_confusion_axes(axes, report.labels, family=family)
    if n_classes <= _MAX_ANNOTATED_CLASSES:
        _annotate_cells(axes, counts, dark=scale(colours) > 0.5)
    axes.set_title(heading, fontfamily=family)
    # Constrained layout leaves the y-axis title partly outside a fixed-aspect image
    # (seen with matplotlib 3.11), so the saved area is grown to fit every artist.
    _save_png(figure, target, fit_artists=True)
    logger.debug("confusion matrix written: path=%s n_classes=%d", target, n_classes)
    return target


def plot_training_curves(
    log_history: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    title: str | None = None,
) -> Path:
    """Write training and evaluation curves from a `Trainer.state.log_history`-like list as a PNG.

    The left axes show the training loss (key ``loss``) and the eval loss
    (``eval_loss``) against ``step``. The right axes show ``eval_accuracy``
    and ``eval_macro_f1`` against ``epoch``, or against ``step`` when some
    eval entry has no epoch. Entries without the x key of their axes are skipped. For a history
    with nothing to plot, the PNG shows a short message instead of axes.

    Args:
        log_history: One mapping per logging event, as the transformers
            `Trainer` stores them.
        path: Output file, which must end in ``.png``. Missing parent folders are created.
        title: Figure title.

    Returns:
        `path`.

    Raises:
        TypeError: If an entry of `log_history` is not a mapping.
        ValueError: If `path` does not end in ``.png``.
    """
    target = _prepare_png_path(path)
    for index, entry in enumerate(log_history):
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"`log_history` must contain mappings such as Trainer.state.log_history "
                f"entries, entry {index} is {entry!r}."
            )
    train_loss = _collect_series(log_history, "loss", x_key="step")
    eval_loss = _collect_series(log_history, "eval_loss", x_key="step")
    metric_x_key = _choose_metric_x_key(log_history)
    metrics = {
        name: _collect_series(log_history, key, x_key=metric_x_key)
        for key, name in _EVAL_METRIC_KEYS.items()
    }
    metrics = {name: series for name, series in metrics.items() if series[0]}

    if not (train_loss[0] or eval_loss[0] or metrics):
        message = "no training history" if not log_history else "no loss or eval metric logged"
        figure = _draw_message(message, title=title)
    else:
        figure = _draw_curves(train_loss, eval_loss, metrics, metric_x_key, title=title)
    _save_png(figure, target)
    logger.debug("training curves written: path=%s entries=%d", target, len(log_history))
    return target


def _prepare_png_path(path: Path) -> Path:
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"`path` must end in '.png', got {str(path)!r}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _row_normalize(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)  # (C, 1)
    # A label with no true examples keeps an all-zero row instead of dividing by zero.
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def _confusion_side_inches(n_classes: int) -> float:
    # Large cells leave room for the counts, and small ones keep 77 or 150 labels on a page.
    cell = 0.6 if n_classes <= _MAX_ANNOTATED_CLASSES else 0.22
    return float(min(max(4.0, n_classes * cell), 40.0))


def _tick_font_size(n_classes: int) -> float:
    if n_classes <= _MAX_ANNOTATED_CLASSES:
        return 10.0
    return 7.0 if n_classes <= 100 else 5.0


def _label_confusion_axes(axes: Axes, labels: list[str], *, family: list[str]) -> None:
    ticks = np.arange(len(labels))
    size = _tick_font_size(len(labels))
    axes.set_xticks(ticks, labels=labels, rotation=90, fontsize=size, fontfamily=family)
    axes.set_yticks(ticks, labels=labels, fontsize=size, fontfamily=family)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")


def _annotate_cells(axes: Axes, counts: np.ndarray, *, dark: np.ndarray) -> None:
    # White text on the darker half of the colour scale keeps every count legible.
    size = 10 if counts.shape[0] <= 10 else 7
    for row, column in np.ndindex(counts.shape):
        axes.text(
            column,
            row,
            str(counts[row, column]),
            ha="center",
            va="center",
            fontsize=size,
            color="white" if dark[row, column] else "black",
        )


def _choose_metric_x_key(log_history: Sequence[Mapping[str, Any]]) -> str:
    """Return ``"epoch"`` when every eval-metric entry has an epoch, else ``"step"``.

    One key for all points keeps epochs and steps from sharing an axis.
    """
    metric_entries = [entry for entry in log_history if _EVAL_METRIC_KEYS.keys() & entry.keys()]
    has_epochs = all(_as_number(entry.get("epoch")) is not None for entry in metric_entries)
    return "epoch" if has_epochs else "step"


def _collect_series(
    log_history: Sequence[Mapping[str, Any]], key: str, *, x_key: str
) -> tuple[list[float], list[float]]:
    """Return the (x, y) points of `key`, skipping entries without a numeric x or y."""
    xs: list[float] = []
    ys: list[float] = []
    for entry in log_history:
        x = _as_number(entry.get(x_key))
        y = _as_number(entry.get(key))
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def _as_number(value: Any) -> float | None:
    """Return `value` as a float, or None when it is missing, a bool or not a number."""
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return float(value)
    return None


def _draw_curves(
    train_loss: tuple[list[float], list[float]],
    eval_loss: tuple[list[float], list[float]],
    metrics: dict[str, tuple[list[float], list[float]]],
    metric_x_key: str,
    *,
    title: str | None,
) -> Figure:
    figure = Figure(figsize=(12.0, 4.5), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, metric_axes = figure.subplots(1, 2)

    if train_loss[0]:
        # Markers make a short run (or a single logged step) visible.
        marker = "." if len(train_loss[0]) <= 50 else None
        loss_axes.plot(*train_loss, marker=marker, linewidth=1.0, label="training loss")
    if eval_loss[0]:
        loss_axes.plot(*eval_loss, marker="o", label="eval loss")
    if train_loss[0] or eval_loss[0]:
        loss_axes.legend()
    else:
        _write_placeholder(loss_axes, "no loss logged")
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("loss")
    loss_axes.grid(alpha=0.3)

    for name, series in metrics.items():
        metric_axes.plot(*series, marker="o", label=f"eval {name}")
    if metrics:
        metric_axes.set_ylim(0.0, 1.02)
        metric_axes.legend()
    else:
        _write_placeholder(metric_axes, "no eval metric logged")
    metric_axes.set_xlabel(metric_x_key)
    metric_axes.set_ylabel("score")
    metric_axes.grid(alpha=0.3)

    if title:
        figure.suptitle(title, fontfamily=_font_family([title]))
    return figure


def _draw_message(message: str, *, title: str | None) -> Figure:
    figure = Figure(figsize=(6.0, 3.0), dpi=_DPI)
    FigureCanvasAgg(figure)
    figure.text(0.5, 0.5, message, ha="center", va="center", fontsize=14)
    if title:
        figure.suptitle(title, fontfamily=_font_family([title]))
    return figure


def _write_placeholder(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes)


def _font_family(texts: Sequence[str]) -> list[str]:
    """Return a font family list that can draw `texts`, CJK font first when one is needed."""
    default = list(matplotlib.rcParams["font.family"])
    if not any(_has_cjk(text) for text in texts):
        return default
    cjk_font = find_cjk_font()
    return [cjk_font, *default] if cjk_font else default


def _has_cjk(text: str) -> bool:
    # U+2E80 starts the CJK radicals, and the Han, kana and Hangul blocks all lie above it.
    return any(ord(character) >= 0x2E80 for character in text)


def _save_png(figure: Figure, target: Path, *, fit_artists: bool = False) -> None:
    bbox = "tight" if fit_artists else None
    with _missing_glyphs_ignored():
        figure.savefig(target, format="png", dpi=_DPI, bbox_inches=bbox, pad_inches=0.15)


@contextmanager
def _missing_glyphs_ignored() -> Iterator[None]:
    """Silence matplotlib's "Glyph ... missing from font(s)" warning, and only that one.

    Without a CJK font, Chinese label names are drawn as empty boxes, but the
    picture is still useful, and the warning would repeat once per character.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning
        )
        yield
