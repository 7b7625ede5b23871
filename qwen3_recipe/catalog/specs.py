"""Schema of catalog entries: one YAML mapping of `name: entry` per file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qwen3_recipe.recipe.schema.common import Section, Tokens


class _Entry(Section):
    description: str | None = None
    hf_id: str | None = None
    """Hugging Face dataset id (loaded on machines with hub access)."""
    path: str | None = None
    """Local file, relative to the YAML file (JSON Lines or Parquet)."""
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    license: str | None = None
    url: str | None = None
    items: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one_location(self):
        if (self.hf_id is None) == (self.path is None):
            raise ValueError("give exactly one of `hf_id` or `path`")
        return self


class DatasetSpec(_Entry):
    """A data source: pretraining text, prompts, or chat samples."""

    format: Literal["hf", "jsonl", "parquet"] = "hf"
    text_field: str | None = "text"
    id_field: str | None = None
    prompt_field: str | None = None
    answer_field: str | None = None
    messages_field: str | None = None
    domain: Literal["web", "code", "math", "books", "academic", "multilingual", "synthetic",
                    "instruction", "reasoning", "chat", "preference"] = "web"
    languages: list[str] = ["en"]
    tokens: Tokens | None = None
    """Approximate size in tokens (feeds the plan's enough-data check)."""


class EvalSpec(_Entry):
    """A benchmark: used for evals and, with the same definition, for decontamination."""

    split: str = "test"
    question_field: str = "question"
    answer_field: str | None = "answer"
    answer_regex: str | None = None
    choices_field: str | None = None
    tests_field: str | None = None
    verifier: Literal["math", "code", "multiple_choice", "exact", "ifeval", "judge"] = "exact"
    category: Literal["math", "code", "general", "alignment", "multilingual", "agent"] = "general"
