"""Fine-tune one classifier per method on a data set and record test figures.

Usage:
    python tests/benchmarks/bench_classifier_methods.py --dataset banking77 \
        --methods head,full,lora,adalora,prefix,contrastive

Each method reads ``pipelines/configs/<dataset>-<method>.yaml``. The figures
are those of the saved model folder on the data set's test split; the test
split is never used to pick checkpoints. Rows go to
``tests/benchmarks/results/<dataset>_methods.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipelines.datasets import load_dataset_splits  # noqa: E402
from shared.training.classifier import train_classifier  # noqa: E402
from shared.training.config import METHODS, ClassifierTrainingConfig, load_config_file  # noqa: E402
from tests.benchmarks._results import write_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="banking77")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--agreement", default=None, help="PhraseBank agreement level.")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    options = {"agreement": args.agreement} if args.agreement else {}
    splits = load_dataset_splits(args.dataset, seed=args.seed, **options)
    print(f"{args.dataset}: {splits.summary()}")
    for method in args.methods.split(","):
        config_path = REPO / "pipelines" / "configs" / f"{args.dataset}-{method}.yaml"
        config = load_config_file(config_path, ClassifierTrainingConfig, seed=args.seed)
        assert isinstance(config, ClassifierTrainingConfig)
        with tempfile.TemporaryDirectory() as run_dir:
            result = train_classifier(splits, config, output_dir=Path(run_dir))
        report = result.test_report
        assert report is not None, "the benchmark data sets have a test split"
        row = {
            "name": f"{args.dataset}/{method}",
            "accuracy": round(report.accuracy, 4),
            "macro_f1": round(report.macro_f1, 4),
            "ece": round(report.ece, 4),
            "train_seconds": round(result.train_seconds, 1),
            "n_train": len(splits.train),
            "n_test": len(splits.test),
            "command": (
                f"python tests/benchmarks/bench_classifier_methods.py --dataset {args.dataset} "
                f"--methods {method}"
            ),
        }
        path = write_rows(f"{args.dataset}_methods", [row])
        print(
            f"{row['name']:<24} accuracy {row['accuracy']:.4f}  macro-F1 {row['macro_f1']:.4f}  "
            f"train {row['train_seconds']:.0f} s  -> {path}"
        )


if __name__ == "__main__":
    main()
