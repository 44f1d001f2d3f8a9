"""Tests for the confusion-matrix and training-curve PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib import font_manager
from PIL import Image

from shared.evaluation import (
    ClassificationReport,
    evaluate_predictions,
    find_cjk_font,
    plot_confusion_matrix,
    plot_training_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path) -> tuple[int, int]:
    """Check that `path` is a non-empty PNG that PIL can decode, and return its size."""
    assert path.is_file()
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def build_report(labels: list[str], random_probabilities, seed: int = 0) -> ClassificationReport:
    probabilities, y_true = random_probabilities(max(300, 10 * len(labels)), len(labels), seed)
    return evaluate_predictions(y_true=y_true, probabilities=probabilities, labels=labels)


@pytest.fixture
def no_cjk_font_cache():
    """Clear the cached font lookup before and after a test that changes the font list."""
    find_cjk_font.cache_clear()
    yield
    find_cjk_font.cache_clear()


def test_confusion_matrix_png_for_three_classes(tmp_path, random_probabilities):
    report = build_report(["card_lost", "refund", "greeting"], random_probabilities)

    written = plot_confusion_matrix(report, tmp_path / "cm.png")

    assert written == tmp_path / "cm.png"
    width, height = assert_valid_png(written)
    assert width >= 400
    assert height >= 400


def test_confusion_matrix_png_grows_for_77_classes(tmp_path, random_probabilities):
    labels = [f"intent_with_a_long_name_{index:02d}" for index in range(77)]
    small = plot_confusion_matrix(
        build_report(labels[:3], random_probabilities), tmp_path / "small.png"
    )

    large = plot_confusion_matrix(
        build_report(labels, random_probabilities), tmp_path / "large.png", title="Banking77"
    )

    small_width, _ = assert_valid_png(small)
    large_width, large_height = assert_valid_png(large)
    assert large_width > 2 * small_width
    assert large_height > 1500


def test_confusion_matrix_png_with_raw_counts(tmp_path, random_probabilities):
    report = build_report(["a", "b", "c", "d"], random_probabilities)

    written = plot_confusion_matrix(report, tmp_path / "counts.png", normalize=False)

    assert_valid_png(written)


def test_confusion_matrix_png_with_chinese_labels(tmp_path, random_probabilities):
    """Chinese names plot without a warning whether or not a CJK font is installed."""
    labels = ["查询余额", "转账失败", "挂失银行卡", "其他"]
    report = build_report(labels, random_probabilities)

    written = plot_confusion_matrix(report, tmp_path / "zh.png", title="意图分类")

    assert_valid_png(written)


def test_confusion_matrix_png_with_empty_true_class(tmp_path, make_rows):
    """A label with no true examples keeps an all-zero row instead of dividing by zero."""
    probabilities = make_rows([0, 1, 1], [0.9, 0.8, 0.7], 3)
    report = evaluate_predictions(
        y_true=[0, 1, 1], probabilities=probabilities, labels=["a", "b", "c"]
    )

    written = plot_confusion_matrix(report, tmp_path / "empty-row.png")

    assert_valid_png(written)


def test_confusion_matrix_creates_parent_folders(tmp_path, random_probabilities):
    report = build_report(["a", "b"], random_probabilities)

    written = plot_confusion_matrix(report, tmp_path / "nested" / "deeper" / "cm.png")

    assert_valid_png(written)


def test_confusion_matrix_rejects_other_suffix(tmp_path, random_probabilities):
    report = build_report(["a", "b"], random_probabilities)

    with pytest.raises(ValueError, match="`path`"):
        plot_confusion_matrix(report, tmp_path / "cm.jpg")


def test_find_cjk_font_prefers_listed_family(monkeypatch, no_cjk_font_cache):
    fonts = [
        font_manager.FontEntry(name="DejaVu Sans"),
        font_manager.FontEntry(name="WenQuanYi Zen Hei"),
        font_manager.FontEntry(name="Noto Sans CJK SC"),
    ]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", fonts)

    assert find_cjk_font() == "Noto Sans CJK SC"


def test_find_cjk_font_returns_none_without_cjk_family(monkeypatch, no_cjk_font_cache):
    monkeypatch.setattr(
        font_manager.fontManager, "ttflist", [font_manager.FontEntry(name="DejaVu Sans")]
    )

    assert find_cjk_font() is None


FULL_HISTORY = [
    {"loss": 2.1, "grad_norm": 5.0, "learning_rate": 5e-5, "epoch": 0.25, "step": 10},
    {"loss": 1.4, "grad_norm": 4.0, "learning_rate": 4e-5, "epoch": 0.5, "step": 20},
    {"loss": 0.9, "grad_norm": 3.0, "learning_rate": 3e-5, "epoch": 0.75, "step": 30},
    {"eval_loss": 0.8, "eval_accuracy": 0.71, "eval_macro_f1": 0.65, "epoch": 1.0, "step": 40},
    {"loss": 0.6, "grad_norm": 2.0, "learning_rate": 2e-5, "epoch": 1.25, "step": 50},
    {"eval_loss": 0.55, "eval_accuracy": 0.83, "eval_macro_f1": 0.8, "epoch": 2.0, "step": 80},
    {"train_runtime": 12.5, "train_loss": 1.1, "epoch": 2.0, "step": 80},
]


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(FULL_HISTORY, id="full"),
        pytest.param([entry for entry in FULL_HISTORY if "loss" in entry], id="training-loss-only"),
        pytest.param([entry for entry in FULL_HISTORY if "eval_loss" in entry], id="eval-only"),
        pytest.param([{"eval_accuracy": 0.7, "epoch": 1.0, "step": 10}], id="one-eval-point"),
        pytest.param([{"loss": 1.0, "step": 1}], id="one-loss-point"),
        pytest.param(
            [{"eval_accuracy": 0.7, "step": 10}, {"eval_accuracy": 0.8, "step": 20}],
            id="metrics-without-epoch",
        ),
        pytest.param([{"loss": float("nan"), "step": 1}, {"loss": 1.0, "step": 2}], id="nan-loss"),
    ],
)
def test_training_curves_png(tmp_path, history):
    written = plot_training_curves(history, tmp_path / "curves.png", title="banking77 / lora")

    width, _ = assert_valid_png(written)
    assert width >= 1000


def test_training_curves_png_for_empty_history(tmp_path):
    written = plot_training_curves([], tmp_path / "curves.png")

    width, height = assert_valid_png(written)
    assert (width, height) == (600, 300)


def test_training_curves_without_plottable_keys(tmp_path):
    history = [{"train_runtime": 3.0, "epoch": 1.0}, {"loss": "n/a", "step": 1}]

    written = plot_training_curves(history, tmp_path / "curves.png", title="no metrics")

    assert_valid_png(written)


def test_training_curves_rejects_non_mapping_entry(tmp_path):
    with pytest.raises(TypeError, match="`log_history`"):
        plot_training_curves([{"loss": 1.0, "step": 1}, 3.0], tmp_path / "curves.png")
