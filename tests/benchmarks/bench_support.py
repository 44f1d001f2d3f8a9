"""Support service on Bitext: triage, retrieval, draft quality and speed.

Usage:
    python tests/benchmarks/bench_support.py [--stages intent,retrieval,drafter,drafts,speed]
        [--home DIR] [--drafts 200] [--train-sample 0]

Split: Bitext stratified 80/10/10 with seed 42, no normalised text in two
splits. The knowledge base holds the training split's replies only.
Stages (each reuses what the earlier ones left in --home):
    intent     `head` intent classifier on the training split, registered and
               promoted as support-intent; test accuracy
    retrieval  knowledge base from the training split; recall@5 (an article of
               the ticket's own intent among the top 5) and MRR on the test split,
               with and without the predicted-intent boost
    drafter    LoRA fine-tuning of the drafter on the training split
               (pipelines/configs/support-drafter.yaml), promoted as support-drafter
    drafts     draft quality on held-out test tickets, reference reply as gold:
               mean embedding cosine and ROUGE-L of (a) the best retrieved answer,
               (b) the base drafter, (c) the fine-tuned drafter, (d) the service's
               output (c with the grounding check and fallback); EOS rate
    speed      triage latency per ticket (clean + mask + classify + retrieve,
               one at a time), p50/p95; drafting time to first token and tokens/s
Rows go to ``tests/benchmarks/results/support.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tests.benchmarks._results import write_rows  # noqa: E402

RESULT_NAME = "support"
CONFIG = REPO / "pipelines" / "configs" / "support-drafter.yaml"
COMMAND = "python tests/benchmarks/bench_support.py --stages {stage}"


def main() -> None:
    """Run the chosen stages and write their rows."""
    args = _parse_args()
    os.environ["DIPTYCH_HOME"] = str(args.home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from pipelines.datasets import load_dataset_splits
    from shared.storage import upgrade_database

    upgrade_database()
    splits = load_dataset_splits("bitext", seed=42)
    print(f"Bitext splits: {splits.summary()}")
    stages = {
        "intent": _stage_intent,
        "retrieval": _stage_retrieval,
        "drafter": _stage_drafter,
        "drafts": _stage_drafts,
        "speed": _stage_speed,
    }
    for stage in args.stages.split(","):
        started = time.perf_counter()
        rows = stages[stage](splits, args)
        for row in rows:
            row.setdefault("command", COMMAND.format(stage=stage))
        if rows:
            path = write_rows(RESULT_NAME, rows)
            print(
                f"stage {stage}: {len(rows)} rows -> {path} ({time.perf_counter() - started:.0f} s)"
            )
            for row in rows:
                print("  ", {k: v for k, v in row.items() if k not in ("command",)})


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stages", default="intent,retrieval,drafter,drafts,speed")
    parser.add_argument("--home", type=Path, default=Path("/tmp/diptych-bench-support"))
    parser.add_argument("--drafts", type=int, default=200, help="Held-out tickets to draft.")
    parser.add_argument(
        "--draft-rows",
        default="best-retrieved,base-drafter,fine-tuned,service",
        help="Rows of the drafts stage to compute.",
    )
    parser.add_argument("--train-sample", type=int, default=0, help="Drafter examples (0 = all).")
    parser.add_argument(
        "--train-offset",
        type=int,
        default=0,
        help="Skip this many examples of the seeded sample (a further pass on new examples).",
    )
    parser.add_argument(
        "--base-model", default=None, help="Drafter to start from, e.g. registry:support-drafter@1."
    )
    return parser.parse_args()


def _stage_intent(splits: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from pipelines.jobs import ClassifierJob, run_classifier_job
    from shared.training.config import ClassifierTrainingConfig

    config = ClassifierTrainingConfig.model_validate({"method": "head", "seed": 42})
    result = run_classifier_job(
        ClassifierJob(
            splits=splits, config=config, name="support-intent", dataset="bitext", promote=True
        )
    )
    report = result.trained.test_report
    assert report is not None
    return [
        {
            "name": "intent-head",
            "accuracy": round(report.accuracy, 4),
            "macro_f1": round(report.macro_f1, 4),
            "n_test": len(splits.test),
            "train_seconds": round(result.trained.train_seconds, 1),
        }
    ]


def _build_kb(splits: Any) -> None:
    from services.support.kb import import_articles
    from services.support.knowledge import build_bitext_articles

    import_articles(build_bitext_articles(splits.train), rebuild=True)


def _stage_retrieval(splits: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from services.support.evaluation import evaluate_retrieval
    from services.support.privacy import mask_pii
    from services.support.retrieval import load_knowledge_index
    from services.support.triage import classify_texts

    _build_kb(splits)
    index = load_knowledge_index()
    texts = [mask_pii(example.text).text for example in splits.test]
    gold = [example.label for example in splits.test]
    predicted = [result.intent for result in classify_texts(texts)]
    rows = []
    for name, intents in (("retrieval-intent-boost", predicted), ("retrieval-text-only", None)):
        scores = evaluate_retrieval(index, texts, gold, predicted_intents=intents, k=5)
        rows.append(
            {
                "name": name,
                "recall_at_5": round(scores.recall, 4),
                "mrr_at_5": round(scores.mrr, 4),
                "n_test": scores.n_tickets,
                "n_articles": len(index.articles),
            }
        )
    return rows


def _stage_drafter(splits: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from pipelines.drafter_job import DrafterJob, run_drafter_job
    from shared.training.causal_lm import CausalLmSftConfig
    from shared.training.config import load_config_file

    overrides = {"base_model": args.base_model} if args.base_model else {}
    config = load_config_file(CONFIG, CausalLmSftConfig, **overrides)
    examples = list(splits.train)
    if args.train_sample:
        # The seeded sample's first N examples are the same for every larger N,
        # so an offset picks examples that an earlier pass did not see.
        total = args.train_offset + args.train_sample
        examples = random.Random(42).sample(examples, total)[args.train_offset :]
    result = run_drafter_job(DrafterJob(examples=examples, config=config, promote=True))
    return [
        {
            "name": "drafter-sft" + (f"-from-{args.base_model}" if args.base_model else ""),
            "train_loss": result.train_loss,
            "eval_loss": result.eval_loss,
            "n_train": result.n_train,
            "train_seconds": round(result.seconds, 1),
            "command": "diptych train drafter --dataset bitext --config "
            f"{CONFIG.relative_to(REPO)} --promote",
        }
    ]


def _draft_inputs(splits: Any, n: int) -> list[tuple[Any, str, str | None, list[Any]]]:
    from services.support.privacy import mask_pii
    from services.support.retrieval import load_knowledge_index
    from services.support.triage import classify_texts
    from shared.settings import get_settings
    from shared.storage import session_scope

    chosen = random.Random(42).sample(list(splits.test), min(n, len(splits.test)))
    texts = [mask_pii(example.text).text for example in chosen]
    triage = classify_texts(texts)
    index = load_knowledge_index()
    settings = get_settings().support
    inputs = []
    with session_scope() as session:
        for example, text, result in zip(chosen, texts, triage, strict=True):
            passages = index.search(
                session, text, intent=result.intent, k_articles=settings.top_k_articles
            )
            inputs.append((example, text, result.intent, passages))
    return inputs


def _score(drafts: list[str], references: list[str]) -> dict[str, float]:
    from services.support.evaluation import score_drafts

    scores = score_drafts(drafts, references)
    return {"mean_cosine": round(scores.mean_cosine, 4), "rouge_l": round(scores.rouge_l, 4)}


def _generate(reference: str, inputs: list[Any]) -> tuple[list[Any], float]:
    from services.support.drafting import build_draft_prompt, reply_budget
    from shared.generation import load_generator

    generator = load_generator(reference)
    prompts = [
        build_draft_prompt(generator, text, intent, passages).text
        for _example, text, intent, passages in inputs
    ]
    started = time.perf_counter()
    generations = generator.generate(prompts, max_new_tokens=reply_budget(generator), batch_size=8)
    return generations, time.perf_counter() - started


def _stage_drafts(splits: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from services.support.drafting import draft_replies
    from shared.generation import clear_generator_cache
    from shared.settings import get_settings

    inputs = _draft_inputs(splits, args.drafts)
    references = [str(example.meta["response"]) for example, *_ in inputs]
    chosen = args.draft_rows.split(",")
    rows = []
    if "best-retrieved" in chosen:
        best = [passages[0].text if passages else "" for *_, passages in inputs]
        rows.append(
            {"name": "drafts-best-retrieved", **_score(best, references), "n_tickets": len(inputs)}
        )
    drafters = {"base-drafter": get_settings().models.drafter, "fine-tuned": "support-drafter"}
    for row_name, reference in drafters.items():
        if row_name not in chosen:
            continue
        generations, seconds = _generate(reference, inputs)
        texts = [g.text for g in generations]
        n_tokens = sum(g.n_new_tokens for g in generations)
        rows.append(
            {
                "name": f"drafts-{row_name}",
                **_score(texts, references),
                "eos_rate": round(float(np.mean([g.finished for g in generations])), 4),
                "n_tickets": len(inputs),
                "generate_seconds": round(seconds, 1),
                "tokens_per_s": round(n_tokens / seconds, 1),
            }
        )
        clear_generator_cache()
    if "service" in chosen:
        results = draft_replies([(text, intent, passages) for _e, text, intent, passages in inputs])
        rows.append(
            {
                "name": "drafts-service",
                **_score([r.text for r in results], references),
                "fallback_rate": round(float(np.mean([r.kind == "fallback" for r in results])), 4),
                "n_tickets": len(inputs),
            }
        )
    return rows


def _stage_speed(splits: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from services.support.cleaning import clean_text
    from services.support.drafting import build_draft_prompt, load_drafter, reply_budget
    from services.support.privacy import mask_pii
    from services.support.retrieval import load_knowledge_index
    from services.support.triage import classify_texts
    from shared.settings import get_settings
    from shared.storage import session_scope

    settings = get_settings().support
    chosen = random.Random(7).sample(list(splits.test), 200)
    index = load_knowledge_index()
    classify_texts(["warm up"])
    timings = []
    with session_scope() as session:
        for example in chosen:
            started = time.perf_counter()
            text = mask_pii(clean_text(example.text)).text
            intent = classify_texts([text])[0].intent
            index.search(
                session,
                text,
                intent=intent,
                k_articles=settings.top_k_articles,
                k_tickets=settings.top_k_tickets,
            )
            timings.append((time.perf_counter() - started) * 1000)
    rows = [
        {
            "name": "triage-latency",
            "p50_ms": round(float(np.percentile(timings, 50)), 1),
            "p95_ms": round(float(np.percentile(timings, 95)), 1),
            "n_tickets": len(timings),
        }
    ]
    inputs = _draft_inputs(splits, 10)
    drafter = load_drafter()
    first_token, rates = [], []
    for _example, text, intent, passages in inputs:
        prompt = build_draft_prompt(drafter, text, intent, passages)
        started = time.perf_counter()
        pieces, first = [], None
        for piece in drafter.stream(prompt.text, max_new_tokens=reply_budget(drafter)):
            first = first or time.perf_counter() - started
            pieces.append(piece)
        seconds = time.perf_counter() - started
        first_token.append((first or seconds) * 1000)
        rates.append(drafter.count_tokens("".join(pieces)) / seconds)
    rows.append(
        {
            "name": "drafting-speed",
            "model": drafter.reference,
            "ttft_p50_ms": round(float(np.percentile(first_token, 50)), 1),
            "tokens_per_s": round(float(np.median(rates)), 1),
            "n_tickets": len(inputs),
        }
    )
    return rows


if __name__ == "__main__":
    main()
