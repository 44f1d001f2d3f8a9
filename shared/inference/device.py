"""Pick the torch device once, from the settings."""

from __future__ import annotations

import torch

from shared.settings import get_settings

__all__ = ["select_device"]


def select_device(preference: str | None = None) -> torch.device:
    """Return the device to run on.

    Args:
        preference: ``auto``, ``cpu`` or ``cuda``; ``None`` reads `Settings.device`.

    Raises:
        ValueError: If CUDA is requested but not available, or the value is unknown.
    """
    choice = preference or get_settings().device
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "`device` is 'cuda' but no CUDA device is available; set DIPTYCH_DEVICE=cpu or auto."
        )
    if choice not in {"cpu", "cuda"}:
        raise ValueError(f"`device` must be 'auto', 'cpu' or 'cuda', got {choice!r}.")
    return torch.device(choice)
