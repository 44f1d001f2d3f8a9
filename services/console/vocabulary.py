"""Words the console translates by value (roles, stages, metric and plot names).

Templates show them through ``_(value)``, which message extraction cannot
read; marking them here puts them in the catalogs.
"""

from __future__ import annotations

from shared.i18n import N_

__all__ = ["TRANSLATED_VALUES"]

TRANSLATED_VALUES = (
    N_("agent"),
    N_("analyst"),
    N_("admin"),
    N_("candidate"),
    N_("production"),
    N_("archived"),
    N_("accuracy"),
    N_("macro_f1"),
    N_("weighted_f1"),
    N_("ece"),
    N_("eval_loss"),
    N_("perplexity"),
    N_("confusion_matrix.png"),
    N_("training_curves.png"),
    N_("training_curve.png"),
)
