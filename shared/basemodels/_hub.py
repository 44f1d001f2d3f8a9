"""Base models named by a Hugging Face hub repository id."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

from shared.errors import BaseModelError

# Config, tokenizer and safetensors files only, so that no pickle weights
# (`*.bin`, `*.pt`) are ever fetched or read from the cache.
HUB_ALLOW_PATTERNS = [
    "*.safetensors",
    "*.json",
    "*.txt",
    "*.model",
    "*.jinja",
]


def is_hub_offline() -> bool:
    """Return True if `HF_HUB_OFFLINE` is true now or was when huggingface_hub was imported."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.upper() in constants.ENV_VARS_TRUE_VALUES or constants.HF_HUB_OFFLINE


def fetch_hub_snapshot(repo_id: str, *, allow_downloads: bool, spec: str) -> Path:
    """Return the local snapshot folder of `repo_id`, downloading it only if allowed.

    With downloads off, or with `HF_HUB_OFFLINE` set, only the local Hugging Face
    cache is searched.

    Raises:
        BaseModelError: If `repo_id` is invalid, not cached while offline, or the
            download fails.
    """
    offline = is_hub_offline()
    try:
        if offline or not allow_downloads:
            return _find_cached_snapshot(repo_id, offline=offline, spec=spec)
        return Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS))
    except HFValidationError as exc:
        raise BaseModelError(
            f"`spec` {spec!r} is not an existing folder, a bundled package or a valid hub "
            f"repository id. {exc} Pass a folder path, `bundled:<package>` or `org/name`."
        ) from exc
    except (HfHubHTTPError, LocalEntryNotFoundError) as exc:
        raise BaseModelError(
            f"`spec` {spec!r}: downloading hub repository {repo_id!r} failed: {exc}. "
            "Check the repository id and the network, or pass a local folder instead."
        ) from exc


def _find_cached_snapshot(repo_id: str, *, offline: bool, spec: str) -> Path:
    try:
        return Path(
            snapshot_download(repo_id, local_files_only=True, allow_patterns=HUB_ALLOW_PATTERNS)
        )
    except LocalEntryNotFoundError as exc:
        reason = (
            "HF_HUB_OFFLINE is set, so this machine is treated as offline"
            if offline
            else "hub downloads are off (`models.allow_hub_downloads` is false)"
        )
        raise BaseModelError(
            f"`spec` {spec!r} is not a local folder, and hub repository {repo_id!r} is not in "
            f"the local Hugging Face cache {constants.HF_HUB_CACHE!r}. It cannot be downloaded "
            f"because {reason}. Either pass a local folder that contains the model in Hugging "
            "Face format, or, on a machine with internet access and HF_HUB_OFFLINE unset, set "
            "DIPTYCH_MODELS__ALLOW_HUB_DOWNLOADS=true to download it into the cache once."
        ) from exc
