"""Causal-LM SFT: label masking, padding, LoRA targets, a tiny run, and config checks."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors import safe_open
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
)

import shared.training
from shared.basemodels import default_drafter
from shared.errors import ConfigurationError, DataError
from shared.generation import TextGenerator, build_prompt, encode_prompt
from shared.settings import Settings
from shared.training import (
    CausalLmCollator,
    CausalLmLoraOptions,
    CausalLmSftConfig,
    SftExample,
    TrainedCausalLM,
    tokenize_sft_example,
    train_causal_lm,
)
from shared.training.causal_lm import (
    DEFAULT_LORA_TARGETS,
    IGNORE_INDEX,
    _prepare_model,
)
from tests.shared.generation.tiny_models import build_tiny_gpt2, build_tiny_tokenizer

TOPICS = ("refund", "password", "delivery", "card", "order")
N_EXAMPLES = 20
N_TOO_LONG = 2
# 20 examples with eval_fraction 0.2: 4 held out, 16 trained at batch 4, so each
# epoch is 4 optimizer steps and 20 steps are 5 epochs (under a second on 2 cores).
TINY_LORA = CausalLmSftConfig(
    method="lora",
    max_steps=20,
    batch_size=4,
    learning_rate=2e-2,
    warmup_ratio=0.0,
    logging_steps=1,
    eval_fraction=0.2,
    max_length=64,
    lora=CausalLmLoraOptions(r=8, alpha=16),
    seed=3,
)


def _examples(tokenizer: PreTrainedTokenizerBase) -> list[SftExample]:
    examples = [
        SftExample(
            prompt=build_prompt(
                tokenizer, system="Be brief.", user=f"Question {index} about my {topic}"
            ),
            response=f"Thank you for contacting support about your {topic}.",
        )
        for index in range(N_EXAMPLES)
        for topic in [TOPICS[index % len(TOPICS)]]
    ]
    # Responses longer than `max_length` on their own, which the run must drop.
    long_response = "Thank you for contacting support. " * 30
    examples += [SftExample(examples[0].prompt, long_response)] * N_TOO_LONG
    return examples


@pytest.fixture(scope="module")
def sft_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 with GPT-2's own initialisation, so its loss starts near ln(400)."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("sft-base"), initializer_range=0.02)


@pytest.fixture(scope="module")
def lora_run(sft_base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedCausalLM:
    """One tiny LoRA run on 20 support replies, shared by the module."""
    tokenizer = AutoTokenizer.from_pretrained(sft_base_dir)
    config = TINY_LORA.model_copy(update={"base_model": str(sft_base_dir)})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIPTYCH_HOME", str(tmp_path_factory.mktemp("sft-home")))
        patch.setenv("DIPTYCH_DEVICE", "cpu")
        return train_causal_lm(
            _examples(tokenizer), config, output_dir=tmp_path_factory.mktemp("sft-run")
        )


# Public API


def test_public_api_names() -> None:
    """`shared.training` exports exactly the causal-LM names."""
    assert sorted(shared.training.__all__) == [
        "CausalLmCollator",
        "CausalLmLoraOptions",
        "CausalLmSftConfig",
        "SftExample",
        "TrainedCausalLM",
        "tokenize_sft_example",
        "train_causal_lm",
    ]


def test_import_training_package_defers_causal_lm() -> None:
    """Importing the package, as the CLI does at start-up, loads no Trainer or peft."""
    code = "import sys, shared.training; print('shared.training.causal_lm' in sys.modules)"

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "False"


# Label masking and padding


def test_tokenize_sft_example_masks_prompt_labels() -> None:
    """Prompt positions get -100; the response ids and the final EOS are kept as labels."""
    tokenizer = build_tiny_tokenizer()
    prompt = build_prompt(tokenizer, system="Be brief.", user="Where is my refund?")
    example = SftExample(prompt, "Your refund was issued today.")
    prompt_ids = encode_prompt(tokenizer, prompt)
    response_ids = tokenizer(example.response, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id

    encoded = tokenize_sft_example(tokenizer, example, max_length=512)

    assert encoded is not None
    assert encoded["input_ids"] == prompt_ids + response_ids + [eos]
    assert encoded["labels"] == [IGNORE_INDEX] * len(prompt_ids) + response_ids + [eos]
    assert encoded["attention_mask"] == [1] * (len(prompt_ids) + len(response_ids) + 1)


def test_tokenize_sft_example_cuts_prompt_middle() -> None:
    """A long example loses the middle of its prompt; the response and EOS stay whole."""
    tokenizer = build_tiny_tokenizer()
    prompt = "System: Be brief. " + "My card was charged twice. " * 30 + "Reply:\n"
    example = SftExample(prompt, "Your refund was issued today.")
    prompt_ids = encode_prompt(tokenizer, prompt)
    response_ids = tokenizer(example.response, add_special_tokens=False)["input_ids"]
    max_length = len(response_ids) + 1 + 11

    encoded = tokenize_sft_example(tokenizer, example, max_length=max_length)

    assert encoded is not None
    assert len(encoded["input_ids"]) == max_length
    assert encoded["input_ids"][:6] == prompt_ids[:6]
    assert encoded["input_ids"][6:11] == prompt_ids[-5:]
    assert encoded["labels"][:11] == [IGNORE_INDEX] * 11
    assert encoded["labels"][11:] == [*response_ids, tokenizer.eos_token_id]


def test_tokenize_sft_example_drops_response_filling_max_length() -> None:
    """A response that with its EOS leaves no room for a prompt token is dropped."""
    tokenizer = build_tiny_tokenizer()
    response = "Thank you for contacting support. " * 10
    n_response = len(tokenizer(response, add_special_tokens=False)["input_ids"]) + 1
    example = SftExample("Customer:\nHi\n\nReply:\n", response)

    assert tokenize_sft_example(tokenizer, example, max_length=n_response) is None
    assert tokenize_sft_example(tokenizer, example, max_length=n_response + 1) is not None


def test_collator_pads_labels_with_ignore_index() -> None:
    """Padding uses -100 in labels, so an EOS that equals the pad token keeps its label."""
    eos = 0
    short = {"input_ids": [5, 6, eos], "attention_mask": [1, 1, 1], "labels": [-100, 6, eos]}
    long = {
        "input_ids": [5, 7, 8, 9, eos],
        "attention_mask": [1] * 5,
        "labels": [-100, -100, 8, 9, eos],
    }

    batch = CausalLmCollator(pad_token_id=eos)([short, long])

    assert batch["input_ids"].tolist() == [[5, 6, eos, eos, eos], [5, 7, 8, 9, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, eos, -100, -100], [-100, -100, 8, 9, eos]]
    assert batch["labels"].dtype == torch.long


# LoRA targets


def _adapted_module_names(model: torch.nn.Module) -> set[str]:
    """Return the last name part of every module that received a LoRA adapter."""
    return {
        name.removesuffix(".lora_A").rsplit(".", 1)[-1]
        for name, _ in model.named_modules()
        if name.endswith(".lora_A")
    }


def test_default_lora_targets_for_llama() -> None:
    assert DEFAULT_LORA_TARGETS["llama"] == (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


def test_lora_wraps_every_llama_projection() -> None:
    """Unset `target_modules` adapts all seven attention and MLP projections of a Llama."""
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = LlamaForCausalLM(config)

    wrapped = _prepare_model(model, CausalLmSftConfig(lora=CausalLmLoraOptions(r=2, alpha=4)))

    assert _adapted_module_names(wrapped) == set(DEFAULT_LORA_TARGETS["llama"])


def test_lora_wraps_gpt2_conv1d_projections(sft_base_dir: Path) -> None:
    """GPT-2's Conv1D projections get adapters, with no peft warning about their layout."""
    model = AutoModelForCausalLM.from_pretrained(sft_base_dir)

    wrapped = _prepare_model(model, CausalLmSftConfig(lora=CausalLmLoraOptions(r=2, alpha=4)))

    assert _adapted_module_names(wrapped) == {"c_attn", "c_proj", "c_fc"}


def test_lora_rejects_unknown_target(sft_base_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(sft_base_dir)
    config = CausalLmSftConfig(lora=CausalLmLoraOptions(target_modules=["no_such_layer"]))

    with pytest.raises(ConfigurationError, match=r"lora\.target_modules"):
        _prepare_model(model, config)


# A tiny LoRA run


def test_train_causal_lm_lowers_eval_loss(lora_run: TrainedCausalLM) -> None:
    """Twenty LoRA steps lower the held-out loss by more than 5%."""
    assert lora_run.eval_loss[0][0] == 0
    assert lora_run.eval_loss[-1][0] == 20
    before, after = lora_run.eval_loss[0][1], lora_run.eval_loss[-1][1]
    assert after < 0.95 * before
    assert [step for step, _ in lora_run.train_loss] == list(range(1, 21))


def test_train_causal_lm_counts_examples(lora_run: TrainedCausalLM) -> None:
    """Too-long responses are dropped and counted; the rest split 16 train, 4 eval."""
    assert lora_run.n_dropped == N_TOO_LONG
    assert lora_run.n_train == 16
    assert lora_run.n_eval == 4


def test_train_causal_lm_saves_merged_safetensors(
    lora_run: TrainedCausalLM, sft_base_dir: Path
) -> None:
    """The folder has the base model's tensors with the adapters merged in, and no peft files."""
    model_dir = lora_run.model_dir
    files = sorted(path.name for path in model_dir.iterdir())

    assert "model.safetensors" in files
    assert "adapter_config.json" not in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth"))]
    with (
        safe_open(str(model_dir / "model.safetensors"), framework="pt") as merged,
        safe_open(str(sft_base_dir / "model.safetensors"), framework="pt") as base,
    ):
        assert sorted(merged.keys()) == sorted(base.keys())
        name = "transformer.h.0.attn.c_attn.weight"
        assert not torch.equal(merged.get_tensor(name), base.get_tensor(name))
        embeddings = "transformer.wte.weight"
        assert torch.equal(merged.get_tensor(embeddings), base.get_tensor(embeddings))


def test_train_causal_lm_writes_training_config(lora_run: TrainedCausalLM) -> None:
    saved = json.loads((lora_run.model_dir / "training_config.json").read_text(encoding="utf-8"))

    assert saved["config"]["method"] == "lora"
    assert saved["config"]["max_steps"] == 20
    assert saved["data"] == {"n_train": 16, "n_eval": 4, "n_dropped": N_TOO_LONG}


def test_train_causal_lm_output_generates(lora_run: TrainedCausalLM) -> None:
    """`TextGenerator.from_folder` loads the merged folder, pads with EOS, and generates."""
    generator = TextGenerator.from_folder(lora_run.model_dir, device="cpu")

    generation = generator.generate([generator.build_prompt("Be brief.", "Hi")], max_new_tokens=8)

    assert generator.tokenizer.pad_token == generator.tokenizer.eos_token
    assert 1 <= generation[0].n_new_tokens <= 8


def test_train_causal_lm_writes_report(lora_run: TrainedCausalLM) -> None:
    """The report has a PNG training curve and the loss history of the result."""
    curve = lora_run.report_dir / "training_curve.png"
    history = json.loads((lora_run.report_dir / "loss_history.json").read_text(encoding="utf-8"))

    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [tuple(point) for point in history["eval_loss"]] == lora_run.eval_loss
    assert [tuple(point) for point in history["train_loss"]] == lora_run.train_loss


def test_train_causal_lm_full_method_lowers_loss(
    sft_base_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Full fine-tuning learns the replies fast, and dropped examples are logged."""
    tokenizer = AutoTokenizer.from_pretrained(sft_base_dir)
    config = TINY_LORA.model_copy(
        update={"base_model": str(sft_base_dir), "method": "full", "learning_rate": 1e-2}
    )

    with caplog.at_level(logging.INFO, logger="shared.training.causal_lm"):
        result = train_causal_lm(_examples(tokenizer), config, output_dir=tmp_path / "run")

    assert result.eval_loss[-1][1] < 0.5 * result.eval_loss[0][1]
    dropped = [r for r in caplog.records if "dropped" in r.getMessage() and r.levelname == "INFO"]
    assert dropped and "dropped=2" in dropped[0].getMessage()


# Input and config checks


def test_train_causal_lm_rejects_empty_response(sft_base_dir: Path, tmp_path: Path) -> None:
    config = TINY_LORA.model_copy(update={"base_model": str(sft_base_dir)})

    with pytest.raises(DataError, match=r"`examples\[1\]` has an empty response"):
        train_causal_lm([("Hi", "Hello."), ("Hi", "  ")], config, output_dir=tmp_path)


def test_train_causal_lm_rejects_non_pair(sft_base_dir: Path, tmp_path: Path) -> None:
    config = TINY_LORA.model_copy(update={"base_model": str(sft_base_dir)})

    with pytest.raises(DataError, match=r"`examples\[0\]`"):
        train_causal_lm(["just a prompt"], config, output_dir=tmp_path)  # type: ignore[list-item]


def test_train_causal_lm_rejects_all_too_long(sft_base_dir: Path, tmp_path: Path) -> None:
    config = TINY_LORA.model_copy(update={"base_model": str(sft_base_dir), "max_length": 8})

    with pytest.raises(DataError, match="No example fits `max_length` 8"):
        train_causal_lm(
            [("Hi", "Thank you for contacting support about your refund.")],
            config,
            output_dir=tmp_path,
        )


def test_train_causal_lm_rejects_max_length_over_context(
    sft_base_dir: Path, tmp_path: Path
) -> None:
    """The tiny GPT-2 has 256 positions, so longer examples could not be encoded."""
    config = TINY_LORA.model_copy(update={"base_model": str(sft_base_dir), "max_length": 512})

    with pytest.raises(ConfigurationError, match="`max_length` 512 exceeds"):
        train_causal_lm([("Hi", "Hello.")], config, output_dir=tmp_path)


def test_train_causal_lm_rejects_missing_base_model(tmp_path: Path) -> None:
    config = CausalLmSftConfig(base_model=str(tmp_path / "missing"))

    with pytest.raises(ConfigurationError, match="`base_model`"):
        train_causal_lm([("Hi", "Hello.")], config, output_dir=tmp_path / "run")


def test_config_rejects_unknown_key() -> None:
    """A misspelt setting fails validation instead of being ignored."""
    with pytest.raises(ValidationError, match="learning_rat"):
        CausalLmSftConfig.model_validate({"learning_rat": 1e-3})


def test_config_rejects_unknown_lora_key() -> None:
    with pytest.raises(ValidationError, match="rank"):
        CausalLmSftConfig.model_validate({"lora": {"rank": 8}})


def test_config_rejects_unknown_method() -> None:
    """Only `lora` and `full` are supported."""
    with pytest.raises(ValidationError, match="method"):
        CausalLmSftConfig.model_validate({"method": "prefix"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("eval_fraction", 0.5),
        ("epochs", 0),
        ("max_length", 4),
        ("batch_size", 0),
        ("gradient_accumulation_steps", 0),
        ("warmup_ratio", 1.0),
        ("max_steps", 0),
    ],
)
def test_config_rejects_out_of_range(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        CausalLmSftConfig.model_validate({field: value})


def test_config_is_frozen() -> None:
    config = CausalLmSftConfig()

    with pytest.raises(ValidationError, match="frozen"):
        config.epochs = 1


def test_config_defaults_learning_rate_by_method() -> None:
    """LoRA trains few weights and takes a 10x larger default learning rate than full."""
    assert CausalLmSftConfig(method="lora").resolved_learning_rate == 2e-4
    assert CausalLmSftConfig(method="full").resolved_learning_rate == 2e-5
    assert CausalLmSftConfig(learning_rate=1e-3).resolved_learning_rate == 1e-3


@pytest.mark.slow
def test_train_causal_lm_on_drafter(tmp_path: Path) -> None:
    """Two LoRA steps on the SmolLM2 drafter save a merged Llama folder that generates.

    Slow: the GGUF conversion alone takes about 20 seconds on a 2-core CPU.
    """
    drafter_dir = default_drafter(Settings(home=tmp_path / "home")).path
    tokenizer = AutoTokenizer.from_pretrained(drafter_dir)
    config = CausalLmSftConfig(
        base_model=str(drafter_dir),
        max_steps=2,
        batch_size=2,
        max_length=96,
        eval_fraction=0.2,
        logging_steps=1,
        lora=CausalLmLoraOptions(r=4, alpha=8),
    )

    result = train_causal_lm(_examples(tokenizer)[:8], config, output_dir=tmp_path / "run")

    assert [step for step, _ in result.eval_loss] == [0, 2]
    generator = TextGenerator.from_folder(result.model_dir, device="cpu")
    assert generator.model.config.model_type == "llama"
    prompt = generator.build_prompt("Be brief.", "Where is my refund?")
    assert generator.generate([prompt], max_new_tokens=8)[0].n_new_tokens >= 1
