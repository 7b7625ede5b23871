"""The page: sections of charts and tables, rendered by the package's Jinja template
(templates/report.html.jinja, shipped as package data). Self-contained: inline CSS and SVG,
no script, no external reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    numeric: set[int] = field(default_factory=set)  # right-aligned columns

    def __post_init__(self) -> None:
        if not self.numeric:
            self.numeric = {i for i in range(len(self.columns))
                            if self.rows and all(isinstance(r[i], (int, float)) or r[i] is None for r in self.rows)}


TITLES = {"plan": "Plan", "funnel": "Data funnel per source", "labels": "LLM labels",
          "mixture": "Mixture: declared vs realised",
          "curriculum": "Curriculum", "loss": "Loss per stage", "rl": "Reward and KL (RL and distillation)",
          "evals": "Eval accuracy vs thinking budget", "contamination": "Contamination"}


@dataclass
class Section:
    id: str
    intro: str = ""
    blocks: list[Markup | Table] = field(default_factory=list)
    empty: str = ""  # why there is nothing to show ...
    command: str = ""  # ... and the command that fills the section
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return TITLES[self.id]

    def no_data(self, command: str) -> Section:
        self.empty, self.command = "no data yet: run", command
        return self

    def add(self, *blocks: Markup | Table) -> Section:
        self.blocks.extend(blocks)
        return self


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def render(context: dict[str, Any]) -> str:
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("qwen3_recipe.report", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["cell"] = cell
    env.tests["table"] = lambda block: isinstance(block, Table)
    return env.get_template("report.html.jinja").render(**context)
