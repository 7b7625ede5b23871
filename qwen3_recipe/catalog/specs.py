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
        if getattr(self, "family", None) and self.path is None:  # its members may each name a file
            return self
        if (self.hf_id is None) == (self.path is None):
            raise ValueError("give exactly one of `hf_id` or `path`")
        return self


TestFormat = Literal["humaneval", "script", "livecodebench", "stdio"]
"""The conventions of code tests (qwen3_recipe/verify/code_tests.py)."""


class CodeFields(_Entry):
    """The columns a code verifier reads, for code benchmarks and code prompt sets alike."""

    tests_field: str | list[str] | None = None
    """The tests column(s); several are concatenated (LiveCodeBench public + private)."""
    test_format: TestFormat | None = None
    """The tests' convention."""
    entry_point_field: str | None = None
    """The function the tests call (HumanEval `entry_point`, LiveCodeBench `metadata.func_name`)."""
    starter_code_field: str | None = None
    """Shown in the prompt, and for HumanEval the prompt a body-only completion continues."""
    example_tests_field: str | None = None
    """Tests shown in the prompt, so the model knows the function's name (MBPP's `test_list`)."""
    test_imports_field: str | None = None


class FamilyMember(Section):
    """One language of a family: the config to load and what is known of its size."""

    config: str | None = None
    path: str | None = None
    """A local file of this language (a family of local files), relative to the YAML file."""
    description: str | None = None
    tokens: Tokens | None = None
    words: Tokens | None = None
    """Words in the dataset card's statistics (`tokens` defaults to words x the family's `tokens_per_word`)."""


class DatasetSpec(CodeFields):
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
    tokens_per_word: float | None = Field(None, gt=0)
    """A family's members given in words: their tokens are words x this (an approximation)."""
    family: dict[str, FamilyMember] | None = None
    """A family of per-language configs of one dataset (FineWeb-2's): each member `CODE` is the
    entry `NAME.CODE`, this entry's keys with the member's over them and `languages: [CODE]`."""



class EvalSpec(CodeFields):
    """A benchmark: used for evals and, with the same definition, for decontamination. The
    `*_field` keys name the row's columns (a dotted path descends into dicts and JSON-text
    columns, e.g. LiveCodeBench's `metadata.func_name`); catalog/items.py turns a row into the
    item its verifier reads."""

    split: str = "test"
    question_field: str = "question"
    """The question column; a list of chat turns (`[{content}]`, Arena-Hard) gives its first."""
    answer_field: str | None = "answer"
    answer_regex: str | None = None
    choices_field: str | list[str] | None = None
    """Multiple choice: one column holding the options (a list), or the option columns in order
    (MMMLU's A-D; GPQA's Correct Answer and Incorrect Answer 1-3)."""
    answer_format: Literal["auto", "index", "letter", "text"] = "auto"
    """How the gold names the right option: an index into the options (MMLU-Redux), a letter
    (MMLU-Pro), or the option's own text (GPQA). `auto`: int -> index, one letter -> letter."""
    shuffle_choices: bool = False
    """Shuffle the options per item with a fixed seed (GPQA's authors prescribe it: the correct
    answer is always the first column)."""
    shuffle_seed: int = 0
    instructions_field: str | None = None
    """IFEval: the instruction ids column (`instruction_id_list`)."""
    kwargs_field: str | None = None
    """IFEval: the per-instruction arguments column (`kwargs`)."""
    baseline_field: str | None = None
    """Judged benchmarks: the baseline model's answer, judged pairwise against ours."""
    date_field: str | None = None
    since: str | None = None
    """Keep items dated on or after this ISO date (LiveCodeBench v5: 2024-10-01)."""
    until: str | None = None
    """Keep items dated before this ISO date."""
    id_field: str | None = None
    prompt_template: str | None = None
    """The user message; `{question}` (and `{choices}`, `{starter_code}`, `{examples}`) filled
    in. Default per verifier (items.py)."""
    verifier: Literal["math", "code", "multiple_choice", "exact", "ifeval", "judge"] = "exact"
    category: Literal["math", "code", "general", "alignment", "multilingual", "agent"] = "general"
