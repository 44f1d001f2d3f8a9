"""Register, find, verify, promote and roll back model versions.

A version is a row in `model_versions` plus a folder
``<home>/models/<name>/v<version>/`` holding ``model/`` (Hugging Face format,
safetensors only), ``report/`` (evaluation report and plots) and
``manifest.json``. The row stores a sha256 of every file under ``model/``;
loading recomputes them and rejects a version whose files changed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from shared.errors import IntegrityError, ModelVersionNotFoundError, RegistryError
from shared.registry.files import compute_checksums, write_manifest
from shared.registry.models import STAGES, ModelVersion
from shared.settings import get_settings
from shared.storage.engine import session_scope

__all__ = [
    "ModelReference",
    "check_label_map",
    "find_version",
    "list_versions",
    "parse_reference",
    "promote_version",
    "register_model",
    "rollback_version",
    "verify_version",
]

logger = logging.getLogger(__name__)

_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class ModelReference:
    """A parsed ``name``, ``name@3`` or ``name@production`` reference."""

    name: str
    version: int | None = None
    stage: str | None = None


def parse_reference(reference: str) -> ModelReference:
    """Parse a model reference as the CLI accepts it.

    Args:
        reference: ``name`` (the production version), ``name@<version>`` or
            ``name@<stage>`` with stage candidate, production or archived.

    Returns:
        The parsed reference.

    Raises:
        ValueError: If the name or the part after ``@`` is invalid.
    """
    name, separator, qualifier = reference.strip().partition("@")
    _check_name(name)
    if separator and not qualifier:
        raise ValueError(
            f"`reference` {reference!r} ends with '@': add a version, `latest` or a stage, "
            "or drop the '@' for the production version."
        )
    if not qualifier:
        return ModelReference(name=name, stage="production")
    if qualifier.isdigit():
        return ModelReference(name=name, version=int(qualifier))
    if qualifier in STAGES:
        return ModelReference(name=name, stage=qualifier)
    if qualifier == "latest":
        return ModelReference(name=name)
    raise ValueError(
        f"`reference` {reference!r} must be NAME, NAME@VERSION, NAME@latest or NAME@STAGE "
        f"with STAGE one of {', '.join(STAGES)}."
    )


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(
            f"`name` {name!r} is invalid: use lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, e.g. 'support-intent'."
        )


def check_label_map(label_map: Mapping[str, int]) -> None:
    """Reject an empty label map or one with generic names such as ``LABEL_0``.

    Raises:
        IntegrityError: If the map is empty, generic, or not indexed 0..n-1.
    """
    if not label_map:
        raise IntegrityError("The label map is empty: a classifier needs named labels.")
    generic = sorted(label for label in label_map if _GENERIC_LABEL.match(label))
    if generic:
        raise IntegrityError(
            f"The label map has generic names {generic[:5]!r}: the label names were lost. "
            "Retrain or re-export the model with `label2id` set from the data set's labels."
        )
    if sorted(label_map.values()) != list(range(len(label_map))):
        raise IntegrityError(
            f"The label map's indices must be 0..{len(label_map) - 1}, got {dict(label_map)!r}."
        )


def register_model(
    *,
    name: str,
    task: str,
    model_dir: Path,
    base_model: str,
    method: str,
    label_map: Mapping[str, int] | None = None,
    data_fingerprint: str = "",
    metrics: Mapping[str, Any] | None = None,
    report_dir: Path | None = None,
    extra_manifest: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Copy a trained model into the registry as a new candidate version.

    Args:
        name: Registry name, e.g. ``support-intent``.
        task: What the model does, e.g. ``sequence-classification`` or ``encoder``.
        model_dir: Folder in Hugging Face format with safetensors weights.
        base_model: The base model it was trained from.
        method: Training method, e.g. ``full`` or ``lora``.
        label_map: Label name to class index; required for classifiers.
        data_fingerprint: sha256 of the training data splits.
        metrics: Headline evaluation figures.
        report_dir: Folder of report files to copy beside the model.
        extra_manifest: Further facts to record in the manifest (config, timings).

    Returns:
        The new row, stage ``candidate``.

    Raises:
        ValueError: If `name` is invalid.
        RegistryError: If `model_dir` is missing or contains pickle weights.
        IntegrityError: If a classifier's label map is missing or generic.
    """
    _check_name(name)
    _check_model_dir(model_dir)
    if task == "sequence-classification":
        check_label_map(label_map or {})
    for _attempt in range(3):
        try:
            return _insert_version(
                name=name,
                task=task,
                model_dir=model_dir,
                base_model=base_model,
                method=method,
                label_map=dict(label_map or {}),
                data_fingerprint=data_fingerprint,
                metrics=dict(metrics or {}),
                report_dir=report_dir,
                extra_manifest=dict(extra_manifest or {}),
            )
        except SQLIntegrityError:
            # Another process took the same version number first; take the next one.
            logger.info("registry version collision name=%s, retrying", name)
    raise RegistryError(f"Could not allocate a version number for {name!r} after 3 attempts.")


def _check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise RegistryError(
            f"`model_dir` {str(model_dir)!r} has no config.json: pass the folder that "
            "`save_pretrained` wrote."
        )
    pickles = [p.name for p in model_dir.rglob("*") if p.suffix in {".bin", ".pt", ".pkl", ".pth"}]
    if pickles:
        raise RegistryError(
            f"`model_dir` {str(model_dir)!r} contains pickle files {pickles!r}; the registry "
            "stores safetensors only. Save with `save_pretrained(..., safe_serialization=True)`."
        )


def _insert_version(
    *,
    name: str,
    task: str,
    model_dir: Path,
    base_model: str,
    method: str,
    label_map: dict[str, int],
    data_fingerprint: str,
    metrics: dict[str, Any],
    report_dir: Path | None,
    extra_manifest: dict[str, Any],
) -> ModelVersion:
    with session_scope() as session:
        latest = session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.name == name)
        )
        version = (latest or 0) + 1
        _warn_on_label_change(session, name=name, label_map=label_map)
        version_dir = get_settings().models_dir / name / f"v{version}"
        # Copy into a private folder first, because a concurrent registration may have read
        # the same version number. Only the registration whose row flushes owns `version_dir`.
        staging_dir = _copy_artefacts(model_dir, report_dir, version_dir.parent)
        checksums = compute_checksums(staging_dir / "model")
        row = ModelVersion(
            name=name,
            version=version,
            task=task,
            base_model=base_model,
            method=method,
            label_map=label_map,
            data_fingerprint=data_fingerprint,
            metrics=metrics,
            checksums=checksums,
            stage="candidate",
            path=str(version_dir.resolve()),
            created_at=dt.datetime.now(dt.UTC),
        )
        session.add(row)
        try:
            session.flush()
        except BaseException:
            shutil.rmtree(staging_dir, ignore_errors=True)
            raise
        if version_dir.exists():
            # A folder without a row is left over from a crashed registration.
            shutil.rmtree(version_dir)
        staging_dir.rename(version_dir)
        write_manifest(version_dir, _manifest(row, extra_manifest))
    logger.info("model registered name=%s version=%d method=%s", name, version, method)
    return row


def _warn_on_label_change(session: Session, *, name: str, label_map: dict[str, int]) -> None:
    """Log when a name's newest version predicts a different label set than the new one."""
    previous = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.name == name)
        .order_by(ModelVersion.version.desc())
        .limit(1)
    ).first()
    if previous is None or not label_map or set(previous.label_map) == set(label_map):
        return
    logger.warning(
        "label set changed name=%s previous=%s labels_before=%d labels_now=%d: "
        "clients of this name will receive different classes after a promotion",
        name,
        previous.reference,
        len(previous.label_map),
        len(label_map),
    )


def _copy_artefacts(model_dir: Path, report_dir: Path | None, name_dir: Path) -> Path:
    """Copy the model and report into a new hidden folder under `name_dir` and return it."""
    name_dir.mkdir(parents=True, exist_ok=True)
    staging_dir = Path(tempfile.mkdtemp(prefix=".staging-", dir=name_dir))
    try:
        shutil.copytree(model_dir, staging_dir / "model")
        if report_dir is not None and report_dir.is_dir():
            shutil.copytree(report_dir, staging_dir / "report")
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    return staging_dir


def _manifest(row: ModelVersion, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "task": row.task,
        "base_model": row.base_model,
        "method": row.method,
        "label_map": row.label_map,
        "data_fingerprint": row.data_fingerprint,
        "metrics": row.metrics,
        "checksums": row.checksums,
        "created_at": row.created_at.isoformat(),
        **extra,
    }


def list_versions(name: str | None = None, *, session: Session | None = None) -> list[ModelVersion]:
    """Return every version (of one name when given), newest first per name."""
    statement = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())
    if name is not None:
        statement = statement.where(ModelVersion.name == name)
    if session is not None:
        return list(session.scalars(statement))
    with session_scope() as own:
        return list(own.scalars(statement))


def find_version(
    reference: str | ModelReference, *, session: Session | None = None
) -> ModelVersion:
    """Find the version a reference points to.

    Raises:
        ModelVersionNotFoundError: If nothing matches; the message lists what exists.
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    if session is None:
        with session_scope() as own:
            return _find(own, ref)
    return _find(session, ref)


def _find(session: Session, ref: ModelReference) -> ModelVersion:
    statement = select(ModelVersion).where(ModelVersion.name == ref.name)
    if ref.version is not None:
        statement = statement.where(ModelVersion.version == ref.version)
    if ref.stage is not None:
        statement = statement.where(ModelVersion.stage == ref.stage)
    row = session.scalars(statement.order_by(ModelVersion.version.desc()).limit(1)).first()
    if row is not None:
        return row
    existing = [f"{v.reference} ({v.stage})" for v in list_versions(ref.name, session=session)]
    wanted = f"version {ref.version}" if ref.version is not None else f"stage {ref.stage}"
    hint = (
        f" Existing: {', '.join(existing)}. Promote one with `diptych models promote {ref.name}@N`."
        if existing
        else (
            f" Nothing is registered under that name in the registry at "
            f"{get_settings().models_dir.resolve()} (set by DIPTYCH_HOME); "
            "see `diptych models list`."
        )
    )
    raise ModelVersionNotFoundError(f"No {wanted} of model {ref.name!r}.{hint}")


def verify_version(row: ModelVersion) -> Path:
    """Check a version's files against its stored checksums and label map.

    Args:
        row: The version to check.

    Returns:
        The version's ``model/`` folder.

    Raises:
        IntegrityError: If the folder is missing, a file changed, appeared or
            vanished, or the stored labels are generic or disagree with config.json.
    """
    model_dir = Path(row.path) / "model"
    if not model_dir.is_dir():
        raise IntegrityError(
            f"Model {row.reference}: folder {str(model_dir)!r} is missing. Restore it from "
            "a backup or register the model again."
        )
    actual = compute_checksums(model_dir)
    changed = sorted(
        path
        for path in set(actual) | set(row.checksums)
        if actual.get(path) != row.checksums.get(path)
    )
    if changed:
        raise IntegrityError(
            f"Model {row.reference}: files changed since registration: {changed!r}. "
            "Restore the original files or register the model again; the version will not load."
        )
    if row.task == "sequence-classification":
        check_label_map(row.label_map)
        _check_config_labels(row, model_dir)
    return model_dir


def _check_config_labels(row: ModelVersion, model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    stored = {str(label): int(index) for label, index in (config.get("label2id") or {}).items()}
    if stored != row.label_map:
        raise IntegrityError(
            f"Model {row.reference}: config.json labels {stored!r} differ from the registered "
            f"label map {row.label_map!r}. Register the model again."
        )


def promote_version(reference: str) -> ModelVersion:
    """Make a version the production one; the previous production version is archived.

    Raises:
        ModelVersionNotFoundError: If the reference matches nothing.
        IntegrityError: If the version's files fail verification.
    """
    with session_scope() as session:
        row = find_version(reference, session=session)
        verify_version(row)
        _set_production(session, row)
    logger.info("model promoted name=%s version=%d", row.name, row.version)
    return row


def _set_production(session: Session, row: ModelVersion) -> None:
    now = dt.datetime.now(dt.UTC)
    current = session.scalars(
        select(ModelVersion).where(
            ModelVersion.name == row.name,
            ModelVersion.stage == "production",
            ModelVersion.id != row.id,
        )
    ).all()
    for previous in current:
        previous.stage = "archived"
        previous.stage_changed_at = now
    row.stage = "production"
    row.stage_changed_at = now


def rollback_version(name: str, *, to_version: int | None = None) -> ModelVersion:
    """Archive the production version and promote an older one.

    Args:
        name: Registry name.
        to_version: The version to restore; default the highest version below
            the current production one.

    Returns:
        The version now in production.

    Raises:
        ModelVersionNotFoundError: If there is no production version or nothing older.
    """
    with session_scope() as session:
        current = find_version(ModelReference(name=name, stage="production"), session=session)
        if to_version is not None:
            target = find_version(ModelReference(name=name, version=to_version), session=session)
        else:
            target = _previous_version(session, current)
        verify_version(target)
        _set_production(session, target)
    logger.info("model rolled back name=%s from=%d to=%d", name, current.version, target.version)
    return target


def _previous_version(session: Session, current: ModelVersion) -> ModelVersion:
    row = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.name == current.name, ModelVersion.version < current.version)
        .order_by(ModelVersion.version.desc())
        .limit(1)
    ).first()
    if row is None:
        raise ModelVersionNotFoundError(
            f"Model {current.reference} is the oldest version: there is nothing to roll back to."
        )
    return row
