"""Tests of the model registry, each run on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from shared.errors import IntegrityError, ModelVersionNotFoundError, RegistryError
from shared.registry import (
    MANIFEST_NAME,
    ModelReference,
    ModelVersion,
    check_label_map,
    find_version,
    list_versions,
    parse_reference,
    promote_version,
    register_model,
    rollback_version,
    verify_version,
)
from shared.settings import get_settings

from .conftest import TINY_BASE_MODEL, TINY_LABEL2ID, register_tiny_model, write_tiny_model_folder

NAME = "support-intent"

# Every test here needs a migrated database, on both back ends.
pytestmark = pytest.mark.usefixtures("database_url")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stages() -> dict[int, str]:
    return {row.version: row.stage for row in list_versions(NAME)}


# Registration


def test_register_model_creates_candidate_version_one(tiny_model_dir: Path) -> None:
    """The first registration of a name is version 1, stage candidate, in its own folder."""
    row = register_tiny_model(tiny_model_dir)

    assert row.version == 1
    assert row.stage == "candidate"
    assert row.reference == f"{NAME}@1"
    assert Path(row.path) == (get_settings().models_dir / NAME / "v1").resolve()
    assert row.label_map == dict(TINY_LABEL2ID)


def test_register_model_stores_checksum_of_every_file(tiny_model_dir: Path) -> None:
    """The row stores the sha256 of each file under model/, equal to the source files' hashes."""
    row = register_tiny_model(tiny_model_dir)

    expected = {
        "config.json": _sha256(tiny_model_dir / "config.json"),
        "model.safetensors": _sha256(tiny_model_dir / "model.safetensors"),
    }
    assert row.checksums == expected
    assert find_version(f"{NAME}@1").checksums == expected


def test_register_model_writes_manifest(tiny_model_dir: Path) -> None:
    """manifest.json beside model/ records the version, labels, base model and checksums."""
    row = register_tiny_model(tiny_model_dir)

    manifest = json.loads((Path(row.path) / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["name"] == NAME
    assert manifest["version"] == 1
    assert manifest["base_model"] == TINY_BASE_MODEL
    assert manifest["label_map"] == dict(TINY_LABEL2ID)
    assert manifest["checksums"] == row.checksums
    assert (Path(row.path) / "model" / "model.safetensors").is_file()


def test_register_model_twice_creates_version_two(tiny_model_dir: Path) -> None:
    """A second registration of the same name gets the next version number."""
    register_tiny_model(tiny_model_dir)

    second = register_tiny_model(tiny_model_dir)

    assert second.version == 2
    assert second.stage == "candidate"
    assert [row.version for row in list_versions(NAME)] == [2, 1]


def test_register_model_numbers_each_name_separately(tiny_model_dir: Path) -> None:
    """Version numbers count per name, so another name starts again at 1."""
    register_tiny_model(tiny_model_dir)

    other = register_tiny_model(tiny_model_dir, name="other-intent")

    assert other.version == 1


def test_register_model_rejects_pickle_weights(tiny_model_dir: Path) -> None:
    """A folder with pytorch_model.bin is rejected and nothing is registered."""
    (tiny_model_dir / "pytorch_model.bin").write_bytes(b"pickled weights")

    with pytest.raises(RegistryError, match=r"pytorch_model\.bin"):
        register_tiny_model(tiny_model_dir)

    assert list_versions(NAME) == []
    assert not (get_settings().models_dir / NAME).exists()


def test_register_model_rejects_folder_without_config(tmp_path: Path) -> None:
    """A folder without config.json is not a saved model and is rejected."""
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(RegistryError, match=r"config\.json"):
        register_tiny_model(empty)


def test_register_model_rejects_generic_labels(tmp_path: Path) -> None:
    """A classifier whose labels are LABEL_0, LABEL_1 lost its names and is rejected."""
    generic = {"LABEL_0": 0, "LABEL_1": 1}
    model_dir = write_tiny_model_folder(tmp_path / "generic", generic)

    with pytest.raises(IntegrityError, match="LABEL_0"):
        register_model(
            name=NAME,
            task="sequence-classification",
            model_dir=model_dir,
            base_model=TINY_BASE_MODEL,
            method="head",
            label_map=generic,
        )

    assert list_versions(NAME) == []


def test_register_model_rejects_missing_label_map(tiny_model_dir: Path) -> None:
    """A classifier registered without a label map is rejected."""
    with pytest.raises(IntegrityError, match="empty"):
        register_model(
            name=NAME,
            task="sequence-classification",
            model_dir=tiny_model_dir,
            base_model=TINY_BASE_MODEL,
            method="head",
        )


def test_register_model_replaces_leftover_folder(tiny_model_dir: Path) -> None:
    """A version folder without a row, left by a crashed registration, is replaced."""
    leftover = get_settings().models_dir / NAME / "v1" / "model"
    leftover.mkdir(parents=True)
    (leftover / "partial.safetensors").write_bytes(b"half-copied")

    row = register_tiny_model(tiny_model_dir)

    assert row.version == 1
    assert sorted(row.checksums) == ["config.json", "model.safetensors"]
    assert not (leftover / "partial.safetensors").exists()
    verify_version(row)


@pytest.mark.parametrize("name", ["Support-Intent", "support intent", "", "-leading-dash"])
def test_register_model_rejects_invalid_name(tiny_model_dir: Path, name: str) -> None:
    """Names are lowercase letters, digits, '.', '_' and '-', starting with a letter or digit."""
    with pytest.raises(ValueError, match="`name`"):
        register_tiny_model(tiny_model_dir, name=name)

    assert list_versions() == []


def test_register_model_concurrent_threads_get_distinct_versions(tiny_model_dir: Path) -> None:
    """Two threads registering one name at once end with versions 1 and 2, both intact."""
    # Given: two threads that start registering at the same moment.
    barrier = threading.Barrier(2)
    results: list[ModelVersion] = []
    errors: list[BaseException] = []

    def register() -> None:
        barrier.wait()
        try:
            results.append(register_tiny_model(tiny_model_dir))
        except BaseException as exc:  # reported by the asserts below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(2)]

    # When: both run to completion.
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then: no error, distinct versions 1 and 2, and each version's files verify.
    assert errors == []
    assert sorted(row.version for row in results) == [1, 2]
    assert [row.version for row in list_versions(NAME)] == [2, 1]
    for version in (1, 2):
        verify_version(find_version(f"{NAME}@{version}"))
    assert sorted(p.name for p in (get_settings().models_dir / NAME).iterdir()) == ["v1", "v2"]


# References


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("a@3", ModelReference(name="a", version=3)),
        ("a@production", ModelReference(name="a", stage="production")),
        ("a@candidate", ModelReference(name="a", stage="candidate")),
        ("a@archived", ModelReference(name="a", stage="archived")),
        ("a@latest", ModelReference(name="a")),
        ("a", ModelReference(name="a", stage="production")),
    ],
)
def test_parse_reference_accepts_valid_forms(reference: str, expected: ModelReference) -> None:
    """NAME means production; NAME@N, NAME@STAGE and NAME@latest are the other forms."""
    assert parse_reference(reference) == expected


@pytest.mark.parametrize("reference", ["a@bogus", "a@-1", "A@1", "@1", "", "a@"])
def test_parse_reference_rejects_invalid_forms(reference: str) -> None:
    """An unknown qualifier or an invalid name raises ValueError."""
    with pytest.raises(ValueError, match=r"`(reference|name)`"):
        parse_reference(reference)


def test_find_version_resolves_each_reference_form(tiny_model_dir: Path) -> None:
    """NAME@2 and NAME@latest find version 2; NAME@candidate finds the newest candidate."""
    register_tiny_model(tiny_model_dir)
    register_tiny_model(tiny_model_dir)

    assert find_version(f"{NAME}@1").version == 1
    assert find_version(f"{NAME}@2").version == 2
    assert find_version(f"{NAME}@latest").version == 2
    assert find_version(f"{NAME}@candidate").version == 2


def test_find_version_without_production_lists_existing(tiny_model_dir: Path) -> None:
    """A plain NAME means production; before any promotion the error lists what exists."""
    register_tiny_model(tiny_model_dir)
    register_tiny_model(tiny_model_dir)

    with pytest.raises(ModelVersionNotFoundError) as caught:
        find_version(NAME)

    message = str(caught.value)
    assert "stage production" in message
    assert f"{NAME}@2 (candidate)" in message
    assert f"{NAME}@1 (candidate)" in message


def test_find_version_of_unknown_name_points_to_list(tiny_model_dir: Path) -> None:
    """A name with no versions at all is reported as unregistered, with the listing command."""
    register_tiny_model(tiny_model_dir)

    with pytest.raises(ModelVersionNotFoundError, match="diptych models list"):
        find_version("missing@1")


def test_find_version_of_missing_number_raises(tiny_model_dir: Path) -> None:
    """A version number that was never registered raises ModelVersionNotFoundError."""
    register_tiny_model(tiny_model_dir)

    with pytest.raises(ModelVersionNotFoundError, match="version 7"):
        find_version(f"{NAME}@7")


def test_find_version_plain_name_after_promotion(tiny_model_dir: Path) -> None:
    """Once a version is promoted, the plain name finds it."""
    register_tiny_model(tiny_model_dir)
    register_tiny_model(tiny_model_dir)
    promote_version(f"{NAME}@1")

    assert find_version(NAME).version == 1


# Promotion and rollback


def test_promote_version_archives_previous_production(tiny_model_dir: Path) -> None:
    """Promoting v2 after v1 leaves v2 in production and v1 archived."""
    register_tiny_model(tiny_model_dir)
    register_tiny_model(tiny_model_dir)

    promote_version(f"{NAME}@1")
    promoted = promote_version(f"{NAME}@2")

    assert promoted.version == 2
    assert _stages() == {1: "archived", 2: "production"}
    assert find_version(f"{NAME}@1").stage_changed_at is not None


def test_promote_version_of_missing_reference_raises(tiny_model_dir: Path) -> None:
    """Promoting a version that does not exist raises and changes no stage."""
    register_tiny_model(tiny_model_dir)

    with pytest.raises(ModelVersionNotFoundError):
        promote_version(f"{NAME}@9")

    assert _stages() == {1: "candidate"}


def test_promote_version_rejects_tampered_files(tiny_model_dir: Path) -> None:
    """A version whose files changed is not promoted."""
    row = register_tiny_model(tiny_model_dir)
    weights = Path(row.path) / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")

    with pytest.raises(IntegrityError, match=r"model\.safetensors"):
        promote_version(row.reference)

    assert _stages() == {1: "candidate"}


def test_rollback_version_restores_previous_production(tiny_model_dir: Path) -> None:
    """Rolling back after promoting v1 then v2 puts v1 back and archives v2."""
    register_tiny_model(tiny_model_dir)
    register_tiny_model(tiny_model_dir)
    promote_version(f"{NAME}@1")
    promote_version(f"{NAME}@2")

    restored = rollback_version(NAME)

    assert restored.version == 1
    assert _stages() == {1: "production", 2: "archived"}


def test_rollback_version_of_oldest_raises(tiny_model_dir: Path) -> None:
    """Rolling back when production is the oldest version raises and changes nothing."""
    register_tiny_model(tiny_model_dir)
    promote_version(f"{NAME}@1")

    with pytest.raises(ModelVersionNotFoundError, match="nothing to roll back to"):
        rollback_version(NAME)

    assert _stages() == {1: "production"}


def test_rollback_version_without_production_raises(tiny_model_dir: Path) -> None:
    """Rolling back a name with no production version raises ModelVersionNotFoundError."""
    register_tiny_model(tiny_model_dir)

    with pytest.raises(ModelVersionNotFoundError, match="stage production"):
        rollback_version(NAME)


def test_rollback_version_to_chosen_version(tiny_model_dir: Path) -> None:
    """`to_version` restores that version and leaves the versions in between alone."""
    for _ in range(3):
        register_tiny_model(tiny_model_dir)
    promote_version(f"{NAME}@3")

    restored = rollback_version(NAME, to_version=1)

    assert restored.version == 1
    assert _stages() == {1: "production", 2: "candidate", 3: "archived"}


def test_rollback_version_to_missing_version_raises(tiny_model_dir: Path) -> None:
    """`to_version` naming no registered version raises and keeps production as it was."""
    register_tiny_model(tiny_model_dir)
    promote_version(f"{NAME}@1")

    with pytest.raises(ModelVersionNotFoundError, match="version 5"):
        rollback_version(NAME, to_version=5)

    assert _stages() == {1: "production"}


# Verification


def test_verify_version_accepts_untouched_files(tiny_model_dir: Path) -> None:
    """An untouched version verifies and returns its model/ folder."""
    row = register_tiny_model(tiny_model_dir)

    assert verify_version(row) == Path(row.path) / "model"


def test_verify_version_rejects_changed_byte(tiny_model_dir: Path) -> None:
    """Changing one byte of the weights fails verification, naming the file."""
    row = register_tiny_model(tiny_model_dir)
    weights = Path(row.path) / "model" / "model.safetensors"
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0xFF
    weights.write_bytes(bytes(content))

    with pytest.raises(IntegrityError, match=r"\['model\.safetensors'\]"):
        verify_version(row)


def test_verify_version_rejects_deleted_file(tiny_model_dir: Path) -> None:
    """A file removed since registration fails verification, naming the file."""
    row = register_tiny_model(tiny_model_dir)
    (Path(row.path) / "model" / "model.safetensors").unlink()

    with pytest.raises(IntegrityError, match=r"\['model\.safetensors'\]"):
        verify_version(row)


def test_verify_version_rejects_added_file(tiny_model_dir: Path) -> None:
    """A file added since registration fails verification, naming the new file."""
    row = register_tiny_model(tiny_model_dir)
    (Path(row.path) / "model" / "extra.safetensors").write_bytes(b"extra")

    with pytest.raises(IntegrityError, match=r"\['extra\.safetensors'\]"):
        verify_version(row)


def test_verify_version_rejects_edited_config(tiny_model_dir: Path) -> None:
    """Editing config.json's label2id changes its checksum, so verification names the file."""
    row = register_tiny_model(tiny_model_dir)
    config_path = Path(row.path) / "model" / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["label2id"] = {"refund": 1, "late_delivery": 0, "card_lost": 2}
    config_path.write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(IntegrityError, match=r"\['config\.json'\]"):
        verify_version(row)


def test_verify_version_rejects_label_map_mismatch(tiny_model_dir: Path) -> None:
    """A registered label map that differs from config.json's label2id fails, naming both."""
    row = register_tiny_model(tiny_model_dir)
    row.label_map = {"refund": 1, "late_delivery": 0, "card_lost": 2}

    with pytest.raises(IntegrityError, match="differ from the registered label map") as caught:
        verify_version(row)

    assert "'refund': 0" in str(caught.value)
    assert "'refund': 1" in str(caught.value)


def test_verify_version_rejects_missing_folder(tiny_model_dir: Path) -> None:
    """A version whose folder was deleted fails verification with the folder's path."""
    row = register_tiny_model(tiny_model_dir)
    model_dir = Path(row.path) / "model"
    for path in model_dir.iterdir():
        path.unlink()
    model_dir.rmdir()

    with pytest.raises(IntegrityError, match="is missing"):
        verify_version(row)


# Label maps


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        ({}, "empty"),
        ({"LABEL_0": 0, "refund": 1}, "LABEL_0"),
        ({"refund": 0, "late_delivery": 2}, "indices"),
        ({"refund": 1, "late_delivery": 2}, "indices"),
    ],
)
def test_check_label_map_rejects_unusable_maps(label_map: dict[str, int], message: str) -> None:
    """Label maps must be non-empty, named, and indexed 0..n-1."""
    with pytest.raises(IntegrityError, match=message):
        check_label_map(label_map)


def test_check_label_map_accepts_named_labels() -> None:
    """A map of real names indexed 0..n-1 passes."""
    check_label_map(TINY_LABEL2ID)
