"""The model registry: versions, stages, checksums and manifests."""

from shared.registry.files import MANIFEST_NAME, compute_checksums, read_manifest
from shared.registry.models import STAGES, ModelVersion
from shared.registry.registry import (
    ModelReference,
    check_label_map,
    find_version,
    list_versions,
    parse_reference,
    promote_version,
    register_model,
    rollback_version,
    verify_version,
)

__all__ = [
    "MANIFEST_NAME",
    "STAGES",
    "ModelReference",
    "ModelVersion",
    "check_label_map",
    "compute_checksums",
    "find_version",
    "list_versions",
    "parse_reference",
    "promote_version",
    "read_manifest",
    "register_model",
    "rollback_version",
    "verify_version",
]
