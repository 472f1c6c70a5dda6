"""How the CLI speaks: Rich tables for people, JSON on stdout (and nothing else) for machines, and errors
without tracebacks on stderr with an exit code that says what kind of failure it was."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from suanli.errors import SpecError, SuanliError, UnknownIdError
from suanli.text import duration

# Piped output gets a wide console so tables are not cut to 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3

P = ParamSpec("P")
R = TypeVar("R")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a person can act on into a message and an exit code instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except UnknownIdError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(EXIT_NOT_FOUND) from None
        except SuanliError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_duration(seconds: float | None) -> str:
    return "—" if seconds is None else duration(seconds)
