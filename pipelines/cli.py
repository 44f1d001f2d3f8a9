"""The `diptych` command line."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from pipelines._cli_console import serve_command, users_app
from pipelines._cli_db import db_app
from pipelines._cli_models import evaluate_command, models_app, predict_command
from pipelines._cli_notify import notify_app
from pipelines._cli_recommender import recommend_app
from pipelines._cli_sentiment import sentiment_app
from pipelines._cli_support import support_app
from pipelines._cli_train import train_app
from pipelines._cli_worker import beat_command, worker_command
from pipelines._console import fail
from shared.logs import configure_logging
from shared.settings import get_settings

app = typer.Typer(
    name="diptych",
    help=(
        "Diptych: NLP services for support, financial sentiment and recommendation "
        "on one fine-tuning core."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_app, name="db")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(support_app, name="support")
app.add_typer(users_app, name="users")
app.command("serve")(serve_command)
app.add_typer(recommend_app, name="recommend")
app.add_typer(sentiment_app, name="sentiment")
app.add_typer(notify_app, name="notify")
app.command("evaluate")(evaluate_command)
app.command("predict")(predict_command)
app.command("worker")(worker_command)
app.command("beat")(beat_command)


@app.callback()
def main(
    log_level: str = typer.Option(
        None,
        "--log-level",
        help="Logging level name, e.g. INFO or DEBUG (default: DIPTYCH_LOG_LEVEL or INFO).",
    ),
) -> None:
    """Diptych command line: train, evaluate, register and serve models."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise fail(_describe_settings_error(exc)) from None
    configure_logging(log_level or settings.log_level)


def _describe_settings_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        variable = "DIPTYCH_" + "__".join(str(part) for part in error["loc"]).upper()
        parts.append(f"{variable}={error.get('input')!r}: {error['msg']}")
    return "invalid setting " + "; ".join(parts)


@app.command("demo")
def demo_command(
    stages: str = typer.Option(
        "support,sentiment,recommender", help="Comma-separated stages to run, in this order."
    ),
    method: str = typer.Option(
        "head", help="Method of the intent and sentiment classifiers; `head` is the fast path."
    ),
    sample: int = typer.Option(
        0,
        min=0,
        help="Use this many training texts of Bitext and PhraseBank only (0 = all), for the "
        "classifiers and the knowledge base; for a quick look.",
    ),
    tickets: int = typer.Option(
        8, min=0, help="Held-out support tickets to triage and draft replies to (0 = none)."
    ),
    stream_items: int = typer.Option(
        3000, min=0, help="StockNet tweets to replay through scoring and alerting (0 = none)."
    ),
) -> None:
    """Run the three services on the public data sets and print one summary.

    Support: intent model, knowledge base and drafted replies on Bitext. Sentiment:
    PhraseBank model and a StockNet replay with alert e-mails to a local mail sink.
    Recommender: MovieLens evaluation and a top-N batch for every user.
    """
    from pipelines.demo import run_demo

    run_demo(
        stages=[name.strip() for name in stages.split(",") if name.strip()],
        method=method,
        sample=sample,
        tickets=tickets,
        stream_items=stream_items,
    )


if __name__ == "__main__":
    app()
