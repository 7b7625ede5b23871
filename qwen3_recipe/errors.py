"""Errors a user can act on: every problem carries a source location and a dotted key path."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Loc:
    """Where a value came from: a file (or `--set`), 1-based line and column."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(slots=True)
class Problem:
    """One located error: `file:line:col  key.path: message`."""

    message: str
    path: str = ""
    loc: Loc | None = None
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.loc}  " if self.loc else ""
        key = f"{self.path}: " if self.path else ""
        text = f"{where}{key}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


@dataclass
class RecipeError(Exception):
    """A bad recipe (or catalog entry). Holds every problem found, not just the first."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.render())

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)

    def __str__(self) -> str:
        return self.render()


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest choice, or a listing when the set is small."""
    choices = sorted({str(c) for c in choices if isinstance(c, (str, int, float))})  # a mutated recipe may hold any
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if 0 < len(choices) <= 12:
        return "expected one of: " + ", ".join(choices)
    return None


class PhaseDone(Exception):
    """A job's part on Slurm is done (its generation requests written, or one array task's share
    generated); the job itself finishes in a later Slurm job, which writes its done marker."""
