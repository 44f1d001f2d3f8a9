"""Fine-tune the support drafter: LoRA supervised fine-tuning of the causal LM.

Each training example is the drafting prompt the service would build for a
ticket (its intent, passages retrieved from the knowledge base, the masked
message) followed by the reference reply. The passages come from a knowledge
base of the training split with the example's own reply removed, so the model
learns to write from similar answers instead of copying the right one.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.support.drafting import DRAFT_INSTRUCTIONS, build_ticket_block
from services.support.knowledge import build_bitext_articles
from services.support.privacy import mask_pii
from shared.data import LabelledText
from shared.generation import TextGenerator
from shared.registry import promote_version, register_model
from shared.retrieval import HybridIndex, SearchHit, load_text_embedder
from shared.settings import get_settings
from shared.training.causal_lm import CausalLmSftConfig, SftExample, train_causal_lm

__all__ = [
    "DrafterJob",
    "DrafterJobResult",
    "build_drafter_examples",
    "read_reply_file",
    "run_drafter_job",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrafterJob:
    """The examples, settings and registry name of one drafter fine-tuning run.

    Attributes:
        examples: Requests labelled with their intent, each with its reference
            reply in ``meta["response"]``.
        config: Fine-tuning settings.
        name: Registry name.
        promote: Promote the new version to production.
        output_dir: Run folder; by default under the home's runs folder.
    """

    examples: Sequence[LabelledText]
    config: CausalLmSftConfig
    name: str = "support-drafter"
    promote: bool = False
    output_dir: Path | None = None


@dataclass(frozen=True)
class DrafterJobResult:
    """The registered drafter and its training figures."""

    reference: str | None
    model_dir: Path
    train_loss: float | None
    eval_loss: float | None
    n_train: int
    seconds: float


def read_reply_file(path: Path) -> list[LabelledText]:
    """Read `replies.jsonl` as `diptych support export-feedback` writes it.

    Raises:
        DataError: If a line is not a JSON object with `text` and `response`.
    """
    from shared.errors import DataError

    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, response = str(row["text"]), str(row["response"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"{str(path)!r} line {number} is not a reply row ({exc}); expected "
                    '{"text": ..., "intent": ..., "response": ...}.'
                ) from None
            examples.append(
                LabelledText(
                    text=text, label=str(row.get("intent") or ""), meta={"response": response}
                )
            )
    return examples


def build_drafter_examples(
    examples: Sequence[LabelledText],
    *,
    generator: TextGenerator,
    max_prompt_tokens: int,
    n_passages: int,
) -> list[SftExample]:
    """Turn requests with reference replies into prompt-response pairs.

    Passages come from a hybrid index over the replies of `examples`, boosted by
    the example's intent, leaving out the example's own reply.
    """
    articles = build_bitext_articles(examples)
    index = HybridIndex(load_text_embedder(None))
    index.add(
        list(range(len(articles))), [a.body for a in articles], tags=[a.intent for a in articles]
    )
    body_ids = {(a.intent, a.body): number for number, a in enumerate(articles)}
    texts = [mask_pii(example.text).text for example in examples]
    hits = _search_by_intent(index, texts, [e.label or None for e in examples], k=n_passages + 1)
    pairs = []
    for example, text, found in zip(examples, texts, hits, strict=True):
        own = body_ids.get((example.label, str(example.meta.get("response", "")).strip()))
        passages = [articles[hit.id].body for hit in found if hit.id != own][:n_passages]
        prompt = generator.fit_prompt(
            DRAFT_INSTRUCTIONS,
            build_ticket_block(text, example.label or None),
            passages,
            # The same budget as serving: prompt tokens plus room for the reply.
            max_new_tokens=1,
            context_limit=max_prompt_tokens + 1,
        )
        pairs.append(SftExample(prompt=prompt.text, response=str(example.meta["response"]).strip()))
    return pairs


def _search_by_intent(
    index: HybridIndex, texts: Sequence[str], intents: Sequence[str | None], *, k: int
) -> list[list[SearchHit]]:
    positions: dict[str | None, list[int]] = {}
    for position, intent in enumerate(intents):
        positions.setdefault(intent, []).append(position)
    hits: list[list[SearchHit]] = [[] for _ in texts]
    for intent, group in positions.items():
        found = index.search_batch([texts[p] for p in group], k=k, tag=intent, tag_mode="boost")
        for position, result in zip(group, found, strict=True):
            hits[position] = result
    return hits


def run_drafter_job(job: DrafterJob) -> DrafterJobResult:
    """Build the examples, fine-tune, register (and optionally promote) the drafter."""
    settings = get_settings()
    started = time.perf_counter()
    output_dir = (
        job.output_dir or settings.runs_dir / f"{job.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    )
    generator = TextGenerator.from_folder(_base_folder(job.config.base_model))
    examples = list(job.examples)
    random.Random(job.config.seed).shuffle(examples)
    pairs = build_drafter_examples(
        examples,
        generator=generator,
        max_prompt_tokens=settings.support.max_prompt_tokens,
        n_passages=settings.support.top_k_articles,
    )
    trained = train_causal_lm(pairs, job.config, output_dir=output_dir)
    train_loss = trained.train_loss[-1][1] if trained.train_loss else None
    eval_loss = trained.eval_loss[-1][1] if trained.eval_loss else None
    metrics = {"train_loss": train_loss, "eval_loss": eval_loss, "n_train": trained.n_train}
    row = register_model(
        name=job.name,
        task="causal-lm",
        model_dir=trained.model_dir,
        base_model=job.config.base_model,
        method=job.config.method,
        metrics=metrics,
        report_dir=trained.report_dir,
        extra_manifest={"config": job.config.model_dump(mode="json")},
    )
    if job.promote:
        promote_version(row.reference)
    return DrafterJobResult(
        reference=row.reference,
        model_dir=trained.model_dir,
        train_loss=train_loss,
        eval_loss=eval_loss,
        n_train=trained.n_train,
        seconds=time.perf_counter() - started,
    )


def _base_folder(spec: str) -> Path:
    from shared.basemodels import resolve_base_model
    from shared.registry import find_version, verify_version

    if spec.startswith("registry:"):
        return verify_version(find_version(spec.removeprefix("registry:")))
    return resolve_base_model(spec, kind="causal-lm").path
