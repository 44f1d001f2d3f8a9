"""Fitting from the database: progress by stage, and the saved model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.recommender.serving import FIT_STAGES, fit_from_database, get_serving_model
from shared.settings import reset_settings


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_fit_reports_progress_by_stage(
    stored_catalogue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stages come in order, each counts up to its total, and a refit finds the cache warm."""
    monkeypatch.setenv("DIPTYCH_RECOMMENDER__EMBEDDING_CACHE_DIR", str(tmp_path / "cache"))
    reset_settings()
    calls: list[tuple[str, int, int]] = []

    fit_from_database(progress=lambda stage, done, total: calls.append((stage, done, total)))
    first_vectors = get_serving_model().vectors.copy()
    again: list[tuple[str, int, int]] = []
    fit_from_database(progress=lambda stage, done, total: again.append((stage, done, total)))

    stages = list(dict.fromkeys(stage for stage, _, _ in calls))
    assert stages == ["embed", "weights", "model"]
    assert set(stages) <= set(FIT_STAGES)
    for stage in stages:
        counts = [(done, total) for name, done, total in calls if name == stage]
        assert counts[0][0] == 0
        assert counts[-1][0] == counts[-1][1]
        assert [done for done, _ in counts] == sorted(done for done, _ in counts)
    assert ("embed", 40, 40) in calls
    assert ("weights", 4, 4) in calls
    assert again[0] == ("embed", 40, 40)
    assert np.allclose(get_serving_model().vectors, first_vectors)
