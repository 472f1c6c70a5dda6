"""Errors a person can act on: what was wrong, where (file, line, field), what is accepted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with some input."""

    message: str
    field: str | None = None  # dotted path, e.g. "sites[2].pools[0].hardware"
    line: int | None = None
    given: Any = None
    accepted: str | None = None

    def render(self, source: str | None) -> str:
        where = source or ""
        if self.line is not None:
            where += f":{self.line}" if where else f"line {self.line}"
        head = (f"{where}: " if where else "") + (f"{self.field}: " if self.field else "")
        text = head + self.message
        if self.given is not None:
            text += f" (given: {_short(self.given)})"
        if self.accepted:
            text += f"; accepted: {self.accepted}"
        return text

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.line is not None:
            out["line"] = self.line
        if self.given is not None:
            out["given"] = _short(self.given)
        if self.accepted:
            out["accepted"] = self.accepted
        return out


class SuanliError(Exception):
    """Base for errors that the CLI and API report to a person without a traceback."""

    code = "error"


@dataclass
class SpecError(SuanliError):
    """A job or network spec (or any other user input) is invalid. Holds every problem found, not just the first."""

    problems: list[Problem]
    source: str | None = None
    kind: str = "spec"
    code: str = field(default="invalid_spec")

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"invalid {self.kind}" + (f" ({n} problems)" if n > 1 else "")
        return head + ":\n" + "\n".join("  " + p.render(self.source) for p in self.problems)

    def as_dict(self) -> dict[str, Any]:
        first = self.problems[0] if self.problems else Problem("invalid input")
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if first.field:
            out["field"] = first.field
        out["problems"] = [p.as_dict() for p in self.problems]
        return out


class UnknownIdError(SuanliError):
    """An id (hardware, site, tariff) that is not known; says which ones are."""

    code = "not_found"

    def __init__(self, what: str, given: str, known: list[str]) -> None:
        self.what, self.given, self.known = what, given, known
        super().__init__(f"unknown {what} {given!r}; {suggest(given, known)}")


def suggest(given: str, known: list[str], limit: int = 12) -> str:
    """'did you mean X?' for near misses, else the list of what is known (shortened)."""
    import difflib

    close = difflib.get_close_matches(given, known, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if len(known) <= limit:
        return "known: " + ", ".join(known)
    return "known: " + ", ".join(known[:limit]) + f", … ({len(known)} in all)"


def _short(value: Any, limit: int = 80) -> str:
    import datetime as _dt
    import reprlib

    short = reprlib.Repr()  # bounded: a value that shares structure (YAML aliases) is never expanded in full
    short.maxlevel, short.maxstring, short.maxother = 3, limit, limit
    text = repr(value.isoformat()) if isinstance(value, _dt.date) else short.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
