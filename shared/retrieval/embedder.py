"""Sentence embeddings from a local encoder folder, loaded once per process.

`TextEmbedder` wraps a sentence-transformers `SentenceTransformer`. A folder
saved by sentence-transformers (with ``modules.json``) loads as saved. A plain
Hugging Face encoder folder gets mean pooling over its token embeddings, which is
the pooling all-MiniLM-L6-v2 was trained with. Embeddings are L2-normalised, so
the inner product of two embeddings is their cosine similarity.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from shared.basemodels import default_encoder
from shared.errors import BaseModelError, RetrievalError
from shared.inference.device import select_device
from shared.retrieval._arrays import as_text_list, check_top_k

__all__ = ["TextEmbedder", "clear_embedder_cache", "load_text_embedder"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 256

# Files whose bytes decide the embeddings besides the weights: the encoder config
# and the sentence-transformers module configs (pooling mode, normalisation).
_CONFIG_FILES = ("config.json", "modules.json", "sentence_bert_config.json")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


class TextEmbedder:
    """A sentence encoder that turns texts into unit-length float32 vectors.

    Attributes:
        model: The underlying `SentenceTransformer`, in eval mode.
    """

    def __init__(self, model: SentenceTransformer, *, name: str) -> None:
        dimension = model.get_embedding_dimension()
        if dimension is None:
            raise RetrievalError(
                f"Embedding model {name!r} does not report its output dimension. "
                "Add a Pooling module to the sentence-transformers model."
            )
        self.model = model
        self._name = name
        self._dimension = int(dimension)

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        model_name: str | None = None,
    ) -> TextEmbedder:
        """Load an encoder from a local model folder.

        Args:
            path: A sentence-transformers folder, or a Hugging Face encoder folder
                (config.json, tokenizer files, weights) that gets mean pooling.
            device: ``auto``, ``cpu``, ``cuda`` or a `torch.device`; ``None`` reads the
                settings (see `select_device`).
            max_length: Tokens per text; longer texts are truncated.
            model_name: Readable part of `name`; defaults to the folder name, or the
                parent folder's name when the folder is called ``model``.

        Raises:
            BaseModelError: If the folder is missing, has no config.json, or cannot
                be loaded.
            RetrievalError: If `max_length` is not a positive integer.
            ValueError: If `device` is ``cuda`` but no CUDA device is available, or
                unknown (raised by `select_device`).
        """
        folder = Path(path).expanduser().resolve()
        _check_encoder_folder(folder)
        max_length = check_top_k(max_length, name="max_length")
        target = device if isinstance(device, torch.device) else select_device(device)
        model = _load_sentence_transformer(folder, device=target, max_length=max_length)
        label = model_name or (folder.parent.name if folder.name == "model" else folder.name)
        embedder = cls(model, name=f"{label}@{fingerprint_model_folder(folder)}")
        logger.info(
            "text embedder loaded name=%s device=%s dimension=%d",
            embedder.name,
            target,
            embedder.dimension,
        )
        return embedder

    @classmethod
    def default(
        cls, *, device: str | torch.device | None = None, max_length: int = DEFAULT_MAX_LENGTH
    ) -> TextEmbedder:
        """Load the encoder named by the `models.encoder` setting (all-MiniLM-L6-v2 by default).

        Raises:
            BaseModelError: If the encoder cannot be resolved or loaded.
        """
        resolved = default_encoder()
        return cls.from_folder(
            resolved.path, device=device, max_length=max_length, model_name=resolved.name
        )

    @property
    def name(self) -> str:
        """Stable model identifier for index manifests: ``<model name>@<12-hex fingerprint>``."""
        return self._name

    @property
    def dimension(self) -> int:
        """Length of each embedding."""
        return self._dimension

    @property
    def device(self) -> torch.device:
        """The device the encoder runs on."""
        return self.model.device

    def encode(
        self, texts: list[str], *, batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """Embed `texts` as float32 rows of unit length, in input order.

        Args:
            texts: The texts; an empty list gives an array of shape (0, dimension).
            batch_size: Texts per forward pass.
            show_progress: Whether to show a progress bar.

        Returns:
            An array of shape (len(texts), dimension).

        Raises:
            RetrievalError: If `texts` is not a list of strings or `batch_size` is not
                a positive integer.
        """
        items = as_text_list(texts)
        batch_size = check_top_k(batch_size, name="batch_size")
        if not items:
            return np.empty((0, self.dimension), dtype=np.float32)
        embeddings = self.model.encode(
            items,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(embeddings, dtype=np.float32)


def _check_encoder_folder(folder: Path) -> None:
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise BaseModelError(
            f"`path` {str(folder)!r} {problem}. Pass a local encoder folder with "
            "config.json, tokenizer files and weights."
        )
    if not (folder / "config.json").is_file():
        raise BaseModelError(
            f"`path` {str(folder)!r} has no config.json, so it is not a Hugging Face model "
            "folder. Save the encoder with `save_pretrained(folder)` first."
        )


def _load_sentence_transformer(
    folder: Path, *, device: torch.device, max_length: int
) -> SentenceTransformer:
    try:
        if (folder / "modules.json").is_file():
            model = SentenceTransformer(str(folder), device=str(device), local_files_only=True)
            model.max_seq_length = max_length
        else:
            offline: dict[str, Any] = {"local_files_only": True}
            transformer = Transformer(
                str(folder),
                max_seq_length=max_length,
                model_kwargs=dict(offline),
                processor_kwargs=dict(offline),
                config_kwargs=dict(offline),
            )
            pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
            model = SentenceTransformer(modules=[transformer, pooling], device=str(device))
    except (OSError, ValueError) as exc:
        raise BaseModelError(
            f"Encoder folder {str(folder)!r} cannot be loaded by sentence-transformers: {exc}. "
            "Check that it contains a complete encoder with its tokenizer files."
        ) from exc
    return model.eval()


def fingerprint_model_folder(folder: Path) -> str:
    """Return 12 hex characters of a SHA-256 over the configs and the weight file sizes.

    Hashing sizes instead of weight bytes keeps this fast for large models. Two
    checkpoints with the same config and weight sizes but different weights get the
    same fingerprint, so pass a distinct `model_name` for a fine-tuned copy.
    """
    digest = hashlib.sha256()
    configs = [folder / name for name in _CONFIG_FILES]
    configs += sorted(folder.glob("*/config.json"))
    for path in configs:
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    weights = sorted({path for pattern in _WEIGHT_PATTERNS for path in folder.glob(pattern)})
    for path in weights:
        digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:12]


_cache_lock = threading.Lock()
_cache: dict[tuple[int, str, str | None], TextEmbedder] = {}


def load_text_embedder(path_or_none: str | Path | None = None) -> TextEmbedder:
    """Return the process's embedder for a folder (``None``: the default encoder), loading it once.

    The cache is keyed by process id, so a forked worker loads its own copy.

    Raises:
        BaseModelError: If the encoder cannot be resolved or loaded.
    """
    if path_or_none is None:
        resolved = default_encoder()
        folder, model_name = resolved.path.resolve(), resolved.name
    else:
        folder, model_name = Path(path_or_none).expanduser().resolve(), None
    key = (os.getpid(), str(folder), model_name)
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = _cache[key] = TextEmbedder.from_folder(folder, model_name=model_name)
        return embedder


def clear_embedder_cache() -> None:
    """Forget every loaded embedder, for example after the encoder setting changed."""
    with _cache_lock:
        _cache.clear()
