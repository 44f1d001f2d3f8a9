"""The terminal console and error exit shared by the CLI commands."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

__all__ = ["describe_validation_error", "fail", "make_console"]

# Rich falls back to 80 columns when stdout is not a terminal, which cuts
# registry references and label names in piped output.
_PIPE_WIDTH = 200


def make_console() -> Console:
    """Return a console that keeps table cells whole when the output is piped."""
    return Console(width=None if sys.stdout.isatty() else _PIPE_WIDTH)


_error_console = Console(stderr=True, width=None if sys.stderr.isatty() else _PIPE_WIDTH)


def fail(exc: Exception | str) -> typer.Exit:
    """Print one error line to stderr and return the exit (code 2) for the caller to raise."""
    message = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
    _error_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=2)


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into CLI terms: ``--option value: what is allowed``."""
    parts = []
    for error in exc.errors():
        option = "--" + "-".join(str(part) for part in error["loc"]).replace("_", "-")
        value = error.get("input")
        parts.append(f"invalid {option} {value!r}: {error['msg']}")
    return "; ".join(parts)
