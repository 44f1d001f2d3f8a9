"""Bar chart of the offline metrics per method."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot_metrics"]

_SHOWN = ("recall_at_10", "recall_at_20", "ndcg_at_10", "coverage")


def plot_metrics(metrics: dict[str, dict[str, float]], path: Path) -> Path:
    """Draw one group of bars per metric, one bar per method, and save a PNG."""
    methods = list(metrics)
    width = 0.8 / max(len(methods), 1)
    figure, axes = plt.subplots(figsize=(8, 4))
    for position, method in enumerate(methods):
        values = [metrics[method][name] for name in _SHOWN]
        offsets = [index + position * width for index in range(len(_SHOWN))]
        axes.bar(offsets, values, width=width, label=method)
    axes.set_xticks([index + 0.4 - width / 2 for index in range(len(_SHOWN))])
    axes.set_xticklabels(["Recall@10", "Recall@20", "NDCG@10", "coverage"])
    axes.set_ylabel("value")
    axes.set_title("Recommender methods on the temporal split")
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
