"""Fixtures for the data-set reader tests: the real data folder and clean settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import reset_settings

# The folder of the public data sets on the development machines; DIPTYCH_DATA_DIR wins.
_DEFAULT_DATA_DIR = Path("/work/shared/data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Return the folder of the public data sets, or skip when none is available."""
    configured = os.environ.get("DIPTYCH_DATA_DIR")
    if configured:
        folder = Path(configured).expanduser()
        if not folder.is_dir():
            pytest.skip(f"DIPTYCH_DATA_DIR={configured!r} is not a folder")
        return folder
    if _DEFAULT_DATA_DIR.is_dir():
        return _DEFAULT_DATA_DIR
    pytest.skip(f"no data folder: set DIPTYCH_DATA_DIR or provide {_DEFAULT_DATA_DIR}")


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Drop cached settings around each test, so environment changes take effect."""
    reset_settings()
    yield
    reset_settings()
