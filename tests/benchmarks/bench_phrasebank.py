"""Financial PhraseBank 50Agree: the baselines and the levers that lift them.

Usage:
    python tests/benchmarks/bench_phrasebank.py [--rows head,full,sentfin,dapt,dapt-sentfin]

Split: stratified 80/10/10 with seed 42, no normalised text in two splits.
Rows:
    head          logistic head on frozen general-domain embeddings
    full          full fine-tuning of the general-domain encoder
    sentfin       as full, with SEntFiN headlines whose entities all share one
                  label added to the training split
                  (``phrasebank-sentfin-full.yaml``)
    dapt          masked-LM pretraining on financial text, then full fine-tuning
    dapt-sentfin  as dapt, with SEntFiN headlines whose entities all share
                  one label added to the training split
                  (``phrasebank-sentfin-full.yaml``)
The masked-LM corpus and the extra labelled headlines exclude every text of
the PhraseBank dev and test splits (by normalised-text hash).
Rows go to ``tests/benchmarks/results/phrasebank.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipelines.datasets import (  # noqa: E402
    load_dataset_splits,
    read_sentfin,
    read_unlabelled_texts,
    resolve_data_dir,
)
from shared.data import DatasetSplits, LabelledText, text_hash  # noqa: E402
from shared.training.classifier import train_classifier  # noqa: E402
from shared.training.config import (  # noqa: E402
    ClassifierTrainingConfig,
    MlmTrainingConfig,
    load_config_file,
)
from shared.training.mlm import train_mlm  # noqa: E402
from tests.benchmarks._results import write_rows  # noqa: E402

CONFIGS = REPO / "pipelines" / "configs"
COMMAND = "python tests/benchmarks/bench_phrasebank.py --rows {row}"


def _classifier_config(name: str, **overrides: object) -> ClassifierTrainingConfig:
    config = load_config_file(CONFIGS / f"phrasebank-{name}.yaml", ClassifierTrainingConfig)
    assert isinstance(config, ClassifierTrainingConfig)
    return config.model_copy(update=overrides)


def _held_out_hashes(splits: DatasetSplits) -> set[str]:
    return {text_hash(example.text) for example in [*splits.dev, *splits.test]}


def _adapt_encoder(splits: DatasetSplits, work: Path) -> tuple[Path, float]:
    """Run masked-LM pretraining on financial text without the held-out sentences."""
    texts = read_unlabelled_texts(
        "financial",
        exclude=[example.text for example in [*splits.dev, *splits.test]],
        sources=["phrasebank", "sentfin", "stocknet"],
    )
    config = load_config_file(CONFIGS / "financial-mlm.yaml", MlmTrainingConfig)
    assert isinstance(config, MlmTrainingConfig)
    result = train_mlm(texts, config, output_dir=work / "mlm")
    print(
        f"masked-LM: {result.n_texts} texts, perplexity {result.perplexity_before:.2f} -> "
        f"{result.perplexity_after:.2f}, {result.train_seconds:.0f} s"
    )
    return result.model_dir, result.train_seconds


def _sentfin_headlines(held_out: set[str]) -> list[LabelledText]:
    """SEntFiN headlines whose entities all carry one label, minus held-out texts."""
    labels: dict[str, set[str]] = defaultdict(set)
    texts: dict[str, str] = {}
    for example in read_sentfin(resolve_data_dir()):
        key = example.meta["headline_id"]
        labels[key].add(example.label)
        texts[key] = example.text
    return [
        LabelledText(text=texts[key], label=next(iter(found)))
        for key, found in labels.items()
        if len(found) == 1 and text_hash(texts[key]) not in held_out
    ]


def _widen_with_sentfin(splits: DatasetSplits) -> DatasetSplits:
    """Add the single-label SEntFiN headlines to the training split only."""
    extra = _sentfin_headlines(_held_out_hashes(splits))
    print(f"adding {len(extra)} SEntFiN headlines to the training split")
    return DatasetSplits(
        train=[*splits.train, *extra], dev=splits.dev, test=splits.test, labels=splits.labels
    )


def _record(
    row: str, splits: DatasetSplits, config: ClassifierTrainingConfig, extra_seconds: float = 0.0
) -> None:
    with tempfile.TemporaryDirectory() as run_dir:
        result = train_classifier(splits, config, output_dir=Path(run_dir))
    report = result.test_report
    assert report is not None
    figures = {
        "name": f"phrasebank/{row}",
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "ece": round(report.ece, 4),
        "train_seconds": round(result.train_seconds + extra_seconds, 1),
        "n_train": len(splits.train),
        "n_test": len(splits.test),
        "command": COMMAND.format(row=row),
    }
    write_rows("phrasebank", [figures])
    print(
        f"{figures['name']:<28} accuracy {figures['accuracy']:.4f}  "
        f"macro-F1 {figures['macro_f1']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="head,full,sentfin,dapt-sentfin,dapt")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    rows = args.rows.split(",")

    splits = load_dataset_splits("phrasebank", seed=42, agreement="50")
    print(f"phrasebank 50Agree: {splits.summary()}")
    if "head" in rows:
        _record("head", splits, _classifier_config("head"))
    if "full" in rows:
        _record("full", splits, _classifier_config("full"))
    if "sentfin" in rows:
        _record("sentfin", _widen_with_sentfin(splits), _classifier_config("sentfin-full"))
    if not {"dapt", "dapt-sentfin"} & set(rows):
        return
    with tempfile.TemporaryDirectory() as work:
        encoder, mlm_seconds = _adapt_encoder(splits, Path(work))
        if "dapt-sentfin" in rows:
            config = _classifier_config("sentfin-full", base_model=str(encoder))
            _record("dapt-sentfin", _widen_with_sentfin(splits), config, extra_seconds=mlm_seconds)
        if "dapt" in rows:
            config = _classifier_config("full", base_model=str(encoder))
            _record("dapt", splits, config, extra_seconds=mlm_seconds)


if __name__ == "__main__":
    main()
