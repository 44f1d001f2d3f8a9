"""The main job: the three services on real data, end to end, with one summary.

Runs on the embedded defaults (SQLite and the registry under DIPTYCH_HOME,
tasks in-process) with the public data sets under DIPTYCH_DATA_DIR:

- support: intent model on Bitext, knowledge base, retrieval, drafted replies
- sentiment: PhraseBank model, a StockNet replay, alerts mailed to a local sink
- recommender: MovieLens evaluation, fit, and a top-N batch for every user
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape

from pipelines.datasets import resolve_data_dir
from pipelines.demo.context import DemoContext
from pipelines.demo.summary import StageReport, render_summary, write_summary
from shared.errors import DatasetNotFoundError, DiptychError
from shared.settings import get_settings
from shared.storage import upgrade_database

__all__ = ["STAGES", "run_demo"]

logger = logging.getLogger(__name__)


def _support(context: DemoContext) -> StageReport:
    from pipelines.demo.support import run_support_stage

    return run_support_stage(context)


def _sentiment(context: DemoContext) -> StageReport:
    from pipelines.demo.sentiment import run_sentiment_stage

    return run_sentiment_stage(context)


def _recommender(context: DemoContext) -> StageReport:
    from pipelines.demo.recommender import run_recommender_stage

    return run_recommender_stage(context)


# The data set folders under DIPTYCH_DATA_DIR that each stage reads.
STAGE_DATA: dict[str, tuple[str, ...]] = {
    "support": ("bitext-customer-support",),
    "sentiment": ("financial-phrasebank", "stocknet-tweets-subset"),
    "recommender": ("movielens-latest-small",),
}

STAGES: dict[str, Callable[[DemoContext], StageReport]] = {
    "support": _support,
    "sentiment": _sentiment,
    "recommender": _recommender,
}


def run_demo(
    *,
    stages: Sequence[str] = tuple(STAGES),
    method: str = "head",
    sample: int = 0,
    tickets: int = 8,
    stream_items: int = 3000,
    console: Console | None = None,
) -> list[StageReport]:
    """Run the chosen stages, print the summary and how to open the console.

    A stage that fails is reported and the others still run; the process then
    exits with status 1.

    Raises:
        SystemExit: With status 2 when the data folder is missing, 1 when a stage failed.
    """
    console = console or Console()
    unknown = [name for name in stages if name not in STAGES]
    if unknown:
        console.print(
            f"Unknown demo stage(s) {unknown!r}; choose from {', '.join(STAGES)}.", markup=False
        )
        raise SystemExit(2)
    settings = get_settings()
    try:
        data_dir = resolve_data_dir()
    except DatasetNotFoundError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise SystemExit(2) from None
    missing = [
        folder for name in stages for folder in STAGE_DATA[name] if not (data_dir / folder).is_dir()
    ]
    if missing:
        console.print(
            f"The data folder {data_dir} lacks {', '.join(f'{m}/' for m in missing)}, which "
            f"the stages {', '.join(stages)} read. Point DIPTYCH_DATA_DIR at the folder that "
            "holds every data set, or choose other stages with --stages.",
            markup=False,
            soft_wrap=True,
        )
        raise SystemExit(2)

    output_dir = settings.home.resolve() / "demo"
    context = DemoContext(
        data_dir=data_dir,
        output_dir=output_dir,
        console=console,
        method=method,
        sample=sample,
        tickets=tickets,
        stream_items=stream_items,
    )
    console.rule("Diptych demo: support, sentiment and recommender on public data")
    console.print(
        f"Data: {data_dir}   Home: {settings.home.resolve()}   Classifier method: {method}",
        markup=False,
    )
    if context.sampled:
        console.print(
            f"Classifiers train on a {sample}-text sample, so their figures will be lower "
            "than the benchmark column.",
            markup=False,
        )
    upgrade_database()

    started = time.perf_counter()
    reports: list[StageReport] = []
    failed: list[str] = []
    for name in stages:
        console.rule(name)
        stage_started = time.perf_counter()
        try:
            reports.append(STAGES[name](context))
        except (DiptychError, ValueError, OSError) as exc:
            logger.exception("demo stage failed stage=%s", name)
            console.print(f"[red]The {name} stage failed: {escape(str(exc))}[/red]")
            failed.append(name)
            reports.append(StageReport(name=name, seconds=time.perf_counter() - stage_started))
    total = time.perf_counter() - started

    console.rule("Summary")
    console.print(render_summary(reports, total_seconds=total))
    for report in reports:
        for note in report.notes:
            console.print(note, markup=False, soft_wrap=True)
    summary_path = write_summary(reports, output_dir / "summary.json", total_seconds=total)
    console.print(f"Figures written to {summary_path}", markup=False, soft_wrap=True)
    _print_console_hint(console, mail_dir=output_dir / "mail")
    if failed:
        console.print(f"[red]Failed stage(s): {', '.join(failed)}.[/red]")
        raise SystemExit(1)
    return reports


def _print_console_hint(console: Console, *, mail_dir: object) -> None:
    executable = shlex.quote(sys.argv[0]) if sys.argv[0].endswith("diptych") else "diptych"
    console.rule("Open the console on this data")
    console.print(
        "\n".join(
            [
                "Create a user for each role you want to try, then start the console:",
                f"  {executable} users create --username admin --role admin",
                f"  {executable} users create --username lin --role agent --language zh_CN "
                "--timezone Asia/Shanghai",
                f"  {executable} serve",
                "Then open http://127.0.0.1:8000 : the support queue holds the drafted tickets, "
                "the sentiment page the alerts, the recommender page every user's list.",
                f"The alert e-mails are in the Maildir {mail_dir}.",
            ]
        ),
        markup=False,
        soft_wrap=True,
    )
