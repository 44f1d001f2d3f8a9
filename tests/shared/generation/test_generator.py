"""Loading causal LMs and batched generation: padding, stopping, lengths and errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from shared.errors import GenerationError, IntegrityError
from shared.generation import TextGenerator, clear_generator_cache, load_generator
from shared.registry import promote_version, register_model
from tests.shared.basemodels.conftest import build_tiny_bert_folder
from tests.shared.generation.tiny_models import TURN_END, build_tiny_gpt2, force_next_token

SYSTEM = "You are a support agent. Answer in one short sentence."
QUESTIONS = [
    "What is the capital of France?",
    "My card was charged twice for the same order, and I would like one payment back.",
    "Hi",
    "Where is my refund? I returned the parcel two weeks ago.",
]
# Prompts of clearly different lengths, so that batches need padding.
TINY_PROMPTS = [
    "Where is my refund?",
    "My card was charged twice for the same order. Please reset my password and help.",
    "Hi",
    "Thank you for contacting support, we are sorry for the trouble with the delivery.",
]


class _GenerateSpy:
    """Records the keyword arguments of `model.generate` and calls through."""

    def __init__(self, generate: Any) -> None:
        self.generate = generate
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.generate(**kwargs)


def _assert_same_texts(batched: list[Any], single: list[Any]) -> None:
    for index, (together, alone) in enumerate(zip(batched, single, strict=True)):
        assert together.text == alone.text, f"prompt {index} differs when batched"
        assert together.n_new_tokens == alone.n_new_tokens, f"prompt {index} token count differs"


# Loading


def test_from_folder_sets_pad_token_and_left_padding(tiny_generator: TextGenerator) -> None:
    """A gpt2-like tokenizer pads with EOS on the left, and the embeddings keep their size."""
    tokenizer = tiny_generator.tokenizer
    model = tiny_generator.model

    assert tokenizer.pad_token == tokenizer.eos_token
    assert tokenizer.padding_side == "left"
    assert model.get_input_embeddings().weight.shape[0] == model.config.vocab_size
    assert not model.training


def test_from_folder_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="does not exist"):
        TextGenerator.from_folder(tmp_path / "missing", device="cpu")


def test_from_folder_rejects_encoder_folder(tmp_path: Path) -> None:
    """A BERT encoder has no causal-LM head, so loading it as a generator fails."""
    folder = build_tiny_bert_folder(tmp_path / "bert")

    with pytest.raises(GenerationError, match="not a causal-lm model"):
        TextGenerator.from_folder(folder, device="cpu")


def test_from_folder_rejects_unknown_dtype(tiny_gpt2_dir: Path) -> None:
    with pytest.raises(ValueError, match="`dtype`"):
        TextGenerator.from_folder(tiny_gpt2_dir, device="cpu", dtype="int3")


def test_from_folder_loads_requested_dtype(tiny_gpt2_dir: Path) -> None:
    generator = TextGenerator.from_folder(tiny_gpt2_dir, device="cpu", dtype="bfloat16")

    assert generator.model.dtype == torch.bfloat16


# Batched generation


def test_generate_batched_matches_one_at_a_time(tiny_generator: TextGenerator) -> None:
    """Left padding with an attention mask leaves each greedy reply unchanged."""
    batched = tiny_generator.generate(TINY_PROMPTS, max_new_tokens=16, batch_size=4)
    single = [tiny_generator.generate([prompt], max_new_tokens=16)[0] for prompt in TINY_PROMPTS]

    _assert_same_texts(batched, single)
    assert len({generation.text for generation in batched}) == len(TINY_PROMPTS)


def test_generate_batched_matches_one_at_a_time_drafter(drafter: TextGenerator) -> None:
    """The SmolLM2 drafter gives the same greedy replies in a batch of 4 as alone."""
    prompts = [drafter.build_prompt(SYSTEM, question) for question in QUESTIONS]

    batched = drafter.generate(prompts, max_new_tokens=16, batch_size=4)
    single = [drafter.generate([prompt], max_new_tokens=16)[0] for prompt in prompts]

    _assert_same_texts(batched, single)
    assert "Paris" in batched[0].text


def test_generate_returns_input_order_across_batches(tiny_generator: TextGenerator) -> None:
    """Prompts sorted into length buckets come back in the order they were given."""
    in_pairs = tiny_generator.generate(TINY_PROMPTS, max_new_tokens=8, batch_size=2)
    alone = [tiny_generator.generate([prompt], max_new_tokens=8)[0] for prompt in TINY_PROMPTS]

    assert [g.text for g in in_pairs] == [g.text for g in alone]


def test_generate_respects_max_new_tokens(tiny_generator: TextGenerator) -> None:
    """No reply is longer than `max_new_tokens`; unfinished ones are exactly that long."""
    generations = tiny_generator.generate(TINY_PROMPTS, max_new_tokens=5)

    for generation in generations:
        assert generation.n_new_tokens <= 5
        assert generation.finished or generation.n_new_tokens == 5
    assert not all(generation.finished for generation in generations)


def test_generate_passes_only_max_new_tokens(tiny_generator: TextGenerator) -> None:
    """`generate` gets a config bounded by `max_new_tokens` alone, a pad id and a mask."""
    spy = _GenerateSpy(tiny_generator.model.generate)
    tiny_generator.model.generate = spy

    tiny_generator.generate(TINY_PROMPTS[:2], max_new_tokens=7)

    call = spy.calls[0]
    config = call["generation_config"]
    assert config.max_new_tokens == 7
    assert config.max_length is None
    assert config.pad_token_id == tiny_generator.tokenizer.pad_token_id
    assert "max_length" not in call
    mask = call["attention_mask"]
    assert mask.shape == call["input_ids"].shape
    # Left padding: the shorter row starts with zeros and every row ends with a real token.
    assert mask[:, -1].tolist() == [1, 1]
    assert 0 in mask[1].tolist() or 0 in mask[0].tolist()


def test_generate_stops_at_eos(tiny_generator: TextGenerator) -> None:
    """A reply that starts with EOS is finished after one token, with empty text."""
    force_next_token(tiny_generator.model, int(tiny_generator.tokenizer.eos_token_id))

    generations = tiny_generator.generate(TINY_PROMPTS, max_new_tokens=16)

    for generation in generations:
        assert generation.finished
        assert generation.n_new_tokens == 1
        assert generation.text == ""


def test_generate_stops_at_end_of_turn_token(tiny_chat_gpt2_dir: Path) -> None:
    """`<|im_end|>` from the chat template ends a reply although it is not the EOS token."""
    generator = TextGenerator.from_folder(tiny_chat_gpt2_dir, device="cpu")
    end_of_turn = generator.tokenizer.get_vocab()[TURN_END]
    assert end_of_turn != generator.tokenizer.eos_token_id
    force_next_token(generator.model, end_of_turn)

    prompt = generator.build_prompt("Be brief.", "Where is my refund?")
    generation = generator.generate([prompt], max_new_tokens=16)[0]

    assert generation.finished
    assert generation.n_new_tokens == 1
    assert generation.text == ""


def test_generate_ignores_sampling_defaults_of_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A generation_config.json that requests sampling neither changes greedy output nor warns."""
    folder = build_tiny_gpt2(tmp_path / "sampling-defaults")
    plain = TextGenerator.from_folder(folder, device="cpu").generate(TINY_PROMPTS, max_new_tokens=8)
    path = folder / "generation_config.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    settings.update(do_sample=True, temperature=0.6, top_p=0.9)
    path.write_text(json.dumps(settings), encoding="utf-8")
    generator = TextGenerator.from_folder(folder, device="cpu")

    with caplog.at_level(logging.WARNING, logger="transformers"):
        greedy = generator.generate(TINY_PROMPTS, max_new_tokens=8)

    assert [g.text for g in greedy] == [g.text for g in plain]
    assert [record.getMessage() for record in caplog.records] == []


def test_generate_samples_when_asked(tiny_generator: TextGenerator) -> None:
    """Sampling with a high temperature departs from the greedy reply."""
    greedy = tiny_generator.generate(TINY_PROMPTS[:1], max_new_tokens=16)[0]
    torch.manual_seed(0)

    samples = tiny_generator.generate(
        TINY_PROMPTS[:1] * 4, max_new_tokens=16, do_sample=True, temperature=2.0
    )

    assert any(sample.text != greedy.text for sample in samples)


def test_generate_rejects_single_string(tiny_generator: TextGenerator) -> None:
    with pytest.raises(TypeError, match="`prompts`"):
        tiny_generator.generate("Where is my refund?")


def test_generate_rejects_empty_prompt(tiny_generator: TextGenerator) -> None:
    with pytest.raises(ValueError, match=r"`prompts\[1\]`"):
        tiny_generator.generate(["Hi", ""])


def test_generate_rejects_bad_sampling_settings(tiny_generator: TextGenerator) -> None:
    with pytest.raises(ValueError, match="temperature"):
        tiny_generator.generate(["Hi"], do_sample=True, temperature=0.0)


def test_generate_rejects_nonpositive_sizes(tiny_generator: TextGenerator) -> None:
    with pytest.raises(ValueError, match="`max_new_tokens`"):
        tiny_generator.generate(["Hi"], max_new_tokens=0)
    with pytest.raises(ValueError, match="`batch_size`"):
        tiny_generator.generate(["Hi"], batch_size=0)


def test_generate_rejects_prompt_over_context(tiny_generator: TextGenerator) -> None:
    """A prompt that leaves no room for `max_new_tokens` in 256 positions is refused."""
    long_prompt = "Where is my refund? " * 60
    assert tiny_generator.count_tokens(long_prompt) + 16 > 256

    with pytest.raises(GenerationError, match=r"`prompts\[1\]` has \d+ tokens"):
        tiny_generator.generate(["Hi", long_prompt], max_new_tokens=16)


def test_generate_wraps_model_failure(tiny_generator: TextGenerator) -> None:
    def fail(**kwargs: Any) -> Any:
        raise RuntimeError("device lost")

    tiny_generator.model.generate = fail

    with pytest.raises(GenerationError, match="device lost"):
        tiny_generator.generate(["Hi"])


# Registry and per-process cache


def test_from_registry_loads_verified_version(
    database_url: str, tiny_gpt2_dir: Path, tiny_generator: TextGenerator
) -> None:
    """A registered causal LM loads by reference and generates as the folder does."""
    row = register_model(
        name="tiny-drafter",
        task="causal-lm",
        model_dir=tiny_gpt2_dir,
        base_model="tiny-gpt2",
        method="full",
    )

    generator = TextGenerator.from_registry("tiny-drafter@latest", device="cpu")

    assert generator.reference == row.reference
    expected = tiny_generator.generate(TINY_PROMPTS[:1], max_new_tokens=8)[0].text
    assert generator.generate(TINY_PROMPTS[:1], max_new_tokens=8)[0].text == expected


def test_from_registry_rejects_changed_files(database_url: str, tiny_gpt2_dir: Path) -> None:
    row = register_model(
        name="tiny-drafter",
        task="causal-lm",
        model_dir=tiny_gpt2_dir,
        base_model="tiny-gpt2",
        method="full",
    )
    config_path = Path(row.path) / "model" / "config.json"
    config_path.write_text(config_path.read_text(encoding="utf-8") + "\n", encoding="utf-8")

    with pytest.raises(IntegrityError, match="files changed"):
        TextGenerator.from_registry("tiny-drafter@1", device="cpu")


def test_load_generator_caches_per_reference(
    tiny_gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same folder loads once per process until the cache is cleared."""
    monkeypatch.setenv("DIPTYCH_DEVICE", "cpu")
    clear_generator_cache()
    try:
        first = load_generator(str(tiny_gpt2_dir))
        again = load_generator(str(tiny_gpt2_dir))
        clear_generator_cache()
        reloaded = load_generator(str(tiny_gpt2_dir))
    finally:
        clear_generator_cache()

    assert again is first
    assert reloaded is not first


def test_load_generator_reads_registry_reference(
    database_url: str, tiny_gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIPTYCH_DEVICE", "cpu")
    register_model(
        name="tiny-drafter",
        task="causal-lm",
        model_dir=tiny_gpt2_dir,
        base_model="tiny-gpt2",
        method="full",
    )
    clear_generator_cache()
    try:
        generator = load_generator("tiny-drafter@1")
    finally:
        clear_generator_cache()

    assert generator.reference == "tiny-drafter@1"


def test_load_generator_follows_a_promotion(
    database_url: str, tiny_gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare name serves the production version, and the next one once it is promoted."""
    monkeypatch.setenv("DIPTYCH_DEVICE", "cpu")
    versions = [
        register_model(
            name="tiny-drafter",
            task="causal-lm",
            model_dir=tiny_gpt2_dir,
            base_model="tiny-gpt2",
            method="full",
        )
        for _ in range(2)
    ]
    clear_generator_cache()
    try:
        promote_version(versions[0].reference)
        first = load_generator("tiny-drafter")
        again = load_generator("tiny-drafter")
        promote_version(versions[1].reference)
        second = load_generator("tiny-drafter")
    finally:
        clear_generator_cache()

    assert again is first
    assert first.reference == "tiny-drafter@1"
    assert second is not first
    assert second.reference == "tiny-drafter@2"


def test_load_generator_reports_unknown_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub-style id that is neither cached nor downloadable fails as a GenerationError."""
    monkeypatch.setenv("DIPTYCH_DEVICE", "cpu")

    with pytest.raises(GenerationError, match="no-such-org/no-such-model"):
        load_generator("no-such-org/no-such-model")
