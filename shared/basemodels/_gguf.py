"""One-time conversion of a GGUF causal LM into a safetensors model folder.

The converted folder is written under a temporary sibling name and renamed into
place only when complete, with a manifest written last. A crash part-way
therefore leaves no folder that a later call would trust. A file lock keeps two
processes from converting the same model at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers
from filelock import FileLock, Timeout
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from shared.errors import BaseModelError

logger = logging.getLogger(__name__)

MANIFEST_NAME = "conversion-manifest.json"
MANIFEST_FORMAT = 1

# transformers 5.25 dequantizes this Q4_1 file to float32 on its own: every
# parameter came back float32 when no `dtype` was passed. Asking for float32
# keeps it so if that default changes, because float16 or bfloat16 would round
# the dequantized values a second time.
CONVERTED_DTYPE = torch.float32


def ensure_converted_gguf(
    gguf_path: Path, *, target: Path, source_package: str, source_version: str
) -> Path:
    """Convert `gguf_path` into the safetensors folder `target` unless already done.

    The folder is reused while its manifest records the SHA-256 of the current
    GGUF file, and converted again otherwise.

    Args:
        gguf_path: The `.gguf` file of a causal LM.
        target: Folder to hold the converted model. Its parent is created if needed.
        source_package: Distribution that ships the file, recorded in the manifest.
        source_version: Installed version of `source_package`, recorded in the manifest.

    Returns:
        `target`, now holding config.json, tokenizer files, model.safetensors and the manifest.

    Raises:
        BaseModelError: If transformers cannot convert the file, or the converted
            tokenizer lacks a chat template or an end-of-sequence token.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    source_sha256 = sha256_of_file(gguf_path)
    if find_stale_reason(target, source_sha256=source_sha256) is None:
        return target

    with _conversion_lock(target):
        # Another process may have finished the conversion while this one waited.
        reason = find_stale_reason(target, source_sha256=source_sha256)
        if reason is None:
            return target
        _remove_leftovers(target)
        source = {
            "source_file": str(gguf_path),
            "source_package": source_package,
            "source_package_version": source_version,
            "source_sha256": source_sha256,
            "source_size_bytes": gguf_path.stat().st_size,
        }
        seconds = _convert_into(gguf_path, target=target, source=source)
    logger.info(
        "Converted GGUF base model to safetensors: source=%s target=%s reason=%s seconds=%.1f",
        gguf_path,
        target,
        reason,
        seconds,
    )
    return target


def convert_gguf_to_safetensors(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF causal LM and save it with its tokenizer as a safetensors folder.

    Raises:
        BaseModelError: If transformers cannot load the file, or the tokenizer lacks
            a chat template or an end-of-sequence token.
    """
    model, tokenizer = _load_gguf(gguf_path)
    _check_tokenizer(tokenizer, gguf_path=gguf_path)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def find_stale_reason(target: Path, *, source_sha256: str) -> str | None:
    """Return why `target` must be converted again, or None if it can be reused."""
    manifest_path = target / MANIFEST_NAME
    if not manifest_path.is_file():
        return "no converted folder yet"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "manifest unreadable"
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return "manifest format unknown"
    if manifest.get("source_sha256") != source_sha256:
        return "GGUF file SHA-256 differs from the manifest"
    if not (target / "config.json").is_file() or not any(target.glob("*.safetensors")):
        return "converted files missing"
    return None


def sha256_of_file(path: Path) -> str:
    """Return the hex SHA-256 of `path`, computed once per process for an unchanged file."""
    stat = path.stat()
    return _sha256_of_unchanged_file(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of_unchanged_file(path: str, size: int, mtime_ns: int) -> str:
    # `size` and `mtime_ns` are only cache keys: a rewritten file misses the cache.
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _load_gguf(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent,
            gguf_file=gguf_path.name,
            dtype=CONVERTED_DTYPE,
            # Without `dequantize=True`, transformers 5.25 leaves a GGUF quantizer on
            # the model, and `save_pretrained` rejects the model as not serializable.
            quantization_config=GgufConfig(dequantize=True),
            local_files_only=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise BaseModelError(
            f"Converting GGUF file {str(gguf_path)!r} with transformers "
            f"{transformers.__version__} failed: {exc}. Check that the file is a complete "
            "causal-LM GGUF of an architecture that transformers can read."
        ) from exc
    return model, tokenizer


def _check_tokenizer(tokenizer: PreTrainedTokenizerBase, *, gguf_path: Path) -> None:
    # Drafting formats prompts with the chat template and stops at the EOS token,
    # so a tokenizer without either is unusable. Both are kept as the GGUF gives them.
    if not tokenizer.chat_template:
        raise BaseModelError(
            f"GGUF file {str(gguf_path)!r} has no chat template (`tokenizer.chat_template` "
            "metadata), which drafting needs. Use a chat or instruct model's GGUF file."
        )
    if tokenizer.eos_token is None:
        raise BaseModelError(
            f"GGUF file {str(gguf_path)!r} has no end-of-sequence token "
            "(`tokenizer.ggml.eos_token_id` metadata). Use a GGUF file that defines one."
        )


def _convert_into(gguf_path: Path, *, target: Path, source: dict[str, Any]) -> float:
    """Convert into a staging sibling of `target`, then rename it into place.

    Returns:
        The conversion time in seconds.
    """
    staging = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:12]}")
    staging.mkdir()
    try:
        started = time.perf_counter()
        convert_gguf_to_safetensors(gguf_path, staging)
        seconds = time.perf_counter() - started
        _write_manifest(staging, source=source, seconds=seconds)
        _match_file_modes(staging, reference=staging / MANIFEST_NAME)
        _fsync_folder(staging)
        _replace_folder(staging, target=target)
    finally:
        # After a successful rename `staging` no longer exists.
        shutil.rmtree(staging, ignore_errors=True)
    return seconds


def _write_manifest(folder: Path, *, source: dict[str, Any], seconds: float) -> None:
    manifest = {
        "format": MANIFEST_FORMAT,
        **source,
        "dtype": str(CONVERTED_DTYPE).removeprefix("torch."),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "converted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "conversion_seconds": round(seconds, 1),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8")


def _match_file_modes(folder: Path, *, reference: Path) -> None:
    # transformers 5.25 writes model.safetensors with mode 0600, unlike the other
    # files, which follow the umask. Other users, such as a worker running under
    # another account, could then not read the shared base model.
    mode = reference.stat().st_mode & 0o777
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(mode)


def _fsync_folder(folder: Path) -> None:
    # Flush file contents before the rename, so that a power loss cannot leave a
    # trusted folder whose files are empty.
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as file:
                os.fsync(file.fileno())


def _replace_folder(staging: Path, *, target: Path) -> None:
    # `os.rename` cannot replace a non-empty folder, so an outdated one is first
    # moved aside. A crash between the two renames leaves no `target`, which the
    # next call converts again.
    outdated = None
    if target.exists():
        outdated = target.with_name(f".{target.name}.outdated-{uuid.uuid4().hex[:12]}")
        os.rename(target, outdated)
    os.rename(staging, target)
    directory_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
    if outdated is not None:
        shutil.rmtree(outdated, ignore_errors=True)


def _remove_leftovers(target: Path) -> None:
    # Called with the lock held, so no live process owns these folders: they are
    # left by a conversion that crashed.
    for pattern in (f".{target.name}.partial-*", f".{target.name}.outdated-*"):
        for leftover in target.parent.glob(pattern):
            logger.debug("Removing leftover conversion folder: path=%s", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def _conversion_lock(target: Path) -> Iterator[None]:
    lock = FileLock(str(target.with_name(f".{target.name}.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("Waiting for another process to finish converting: target=%s", target)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
