"""Checks on a base-model folder: safetensors weights and the expected model kind."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import transformers
from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_MAPPING_NAMES,
)

from shared.errors import BaseModelError

BaseModelKind = Literal["encoder", "causal-lm"]

# Weight files that `torch.load` unpickles. Unpickling can run arbitrary code.
_PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")


def check_model_folder(path: Path, *, spec: str) -> None:
    """Check that `path` is a Hugging Face model folder with safetensors weights.

    Raises:
        BaseModelError: If the folder is missing, has no `config.json`, or has no
            safetensors weights.
    """
    if not path.is_dir():
        problem = "is not a folder" if path.exists() else "does not exist"
        raise BaseModelError(
            f"`spec` {spec!r}: base-model folder {str(path)!r} {problem}. "
            "Pass a folder that contains config.json, tokenizer files and *.safetensors weights."
        )
    if not (path / "config.json").is_file():
        raise BaseModelError(
            f"`spec` {spec!r}: folder {str(path)!r} has no config.json, so it is not a "
            "Hugging Face model folder. Save the model with `save_pretrained(folder)` first."
        )
    if any(path.glob("*.safetensors")):
        return

    pickles = sorted(file.name for pattern in _PICKLE_PATTERNS for file in path.glob(pattern))
    if pickles:
        raise BaseModelError(
            f"`spec` {spec!r}: folder {str(path)!r} has only pickle weights {pickles!r}. "
            "Diptych never unpickles model files, because unpickling can run arbitrary code. "
            "On a machine you trust, convert them once with "
            "`AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)` "
            "(AutoModelForCausalLM for a causal LM) and remove the pickle files."
        )
    raise BaseModelError(
        f"`spec` {spec!r}: folder {str(path)!r} has no *.safetensors weights. "
        "Save the model with `save_pretrained(folder, safe_serialization=True)`."
    )


def check_model_kind(path: Path, *, kind: BaseModelKind, spec: str) -> None:
    """Check from config.json alone, loading no weights, that the model is of `kind`.

    An encoder is any model type that `AutoModel` loads. A causal LM needs an
    `architectures` entry that is a causal-LM class, because a checkpoint saved
    without its LM head (a `BertModel`, say) would get a randomly initialized one.
    Without `architectures`, the model type must be one `AutoModelForCausalLM` loads.

    Raises:
        BaseModelError: If the config cannot be read or names another kind of model.
    """
    config = _load_config(path, spec=spec)
    if kind == "encoder":
        is_expected_kind = config.model_type in MODEL_MAPPING_NAMES
    else:
        is_expected_kind = _is_causal_lm(config)
    if not is_expected_kind:
        raise BaseModelError(
            f"`spec` {spec!r} is not a {kind} model: its config has model_type "
            f"{config.model_type!r} and architectures {config.architectures!r}. "
            f"Pass a {_describe_kind(kind)}."
        )


def _load_config(path: Path, *, spec: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(path)
    except (ValueError, OSError, KeyError) as exc:
        raise BaseModelError(
            f"`spec` {spec!r}: transformers {transformers.__version__} cannot read "
            f"{str(path / 'config.json')!r}: {exc}. Models that need `trust_remote_code` "
            "are not supported; pick a model whose type transformers ships."
        ) from exc


def _is_causal_lm(config: PretrainedConfig) -> bool:
    architectures = config.architectures or []
    if not architectures:
        return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    causal_lm_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    return any(name.endswith("ForCausalLM") or name in causal_lm_classes for name in architectures)


def _describe_kind(kind: BaseModelKind) -> str:
    if kind == "encoder":
        return "model that AutoModel loads, such as a BERT or MiniLM sentence encoder"
    return "model saved with a causal-LM head, such as LlamaForCausalLM or GPT2LMHeadModel"
