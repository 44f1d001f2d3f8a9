"""Checksums and the manifest of a registered version's folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_NAME", "compute_checksums", "read_manifest", "sha256_file", "write_manifest"]

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def compute_checksums(model_dir: Path) -> dict[str, str]:
    """Hash every file under a model folder, keyed by its POSIX path relative to it."""
    return {
        path.relative_to(model_dir).as_posix(): sha256_file(path)
        for path in sorted(model_dir.rglob("*"))
        if path.is_file()
    }


def write_manifest(version_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` into a version folder and return its path."""
    path = version_dir / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """Read a version folder's manifest, or an empty dict when it has none."""
    path = version_dir / MANIFEST_NAME
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
