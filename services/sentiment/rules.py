"""Alert rules, read from YAML: what to detect per entity and how notifications are timed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from shared.errors import ConfigurationError

__all__ = ["DEFAULT_RULES_FILE", "Rule", "RuleKind", "RuleSet", "load_rules"]

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.yaml")

RuleKind = Literal["negative_share_surge", "volume_spike", "score_drop"]


class Rule(BaseModel):
    """One detection rule."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,100}$", description="Unique rule name.")
    kind: RuleKind = Field(
        description="`negative_share_surge` compares the bucket's negative share, "
        "`volume_spike` its mention count, `score_drop` its mean score (alerting on a fall)."
    )
    bucket: Literal["5m", "1h", "1d"] = Field(description="Bucket the rule reads.")
    min_volume: int = Field(ge=1, description="Minimum number of mentions in the bucket to alert.")
    threshold_sd: float = Field(
        gt=0, description="Alert when the figure is this many baseline standard deviations out."
    )
    baseline_buckets: int = Field(
        ge=2, le=10_000, description="Buckets before the current one that form the baseline."
    )
    min_baseline_buckets: int = Field(
        default=3,
        ge=1,
        description="Minimum number of non-empty baseline buckets needed to evaluate.",
    )
    min_spread: float = Field(
        gt=0, description="Floor of the baseline standard deviation, in the figure's unit."
    )
    for_buckets: int = Field(
        default=1,
        ge=1,
        description="Consecutive buckets the condition must hold before the alert fires; "
        "until then it is pending.",
    )
    severity: Literal["info", "warning", "critical"] = "warning"
    description: str = ""

    @model_validator(mode="after")
    def _check_baseline(self) -> Rule:
        if self.min_baseline_buckets > self.baseline_buckets:
            raise ValueError(
                f"rule {self.name!r}: `min_baseline_buckets` ({self.min_baseline_buckets}) "
                f"must not exceed `baseline_buckets` ({self.baseline_buckets})"
            )
        return self


class RuleSet(BaseModel):
    """The rules and the notification timing."""

    model_config = {"extra": "forbid"}

    group_wait_s: float = Field(default=30.0, ge=0)
    group_interval_s: float = Field(default=300.0, ge=0)
    repeat_interval_s: float = Field(default=14_400.0, gt=0)
    send_resolved: bool = True
    rules: list[Rule] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        names = [rule.name for rule in rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique; repeated: {repeated}")
        return rules


def load_rules(path: Path | None = None) -> RuleSet:
    """Read a rules file; `None` reads the configured file, else the package's default.

    Raises:
        ConfigurationError: The file is missing, is not YAML, or a rule is invalid.
    """
    if path is None:
        from shared.settings import get_settings

        path = get_settings().sentiment.rules_file or DEFAULT_RULES_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"rules file {str(path)!r} not found; fix DIPTYCH_SENTIMENT__RULES_FILE."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"rules file {str(path)!r} is not valid YAML: {exc}") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"rules file {str(path)!r} is invalid: {exc}") from None
