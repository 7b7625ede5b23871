"""The annotation prompts (jinja2 templates, one per label dimension) and reading a score or a label
out of the annotator's answer."""

from __future__ import annotations

import hashlib
import re

# After FineWeb-Edu's annotation prompt (HuggingFaceFW/fineweb-edu, Llama-3-70B-Instruct annotations):
# an additive 0-5 educational-value scale.
DEFAULT_RUBRIC = """\
Below is an extract from a web page. Evaluate whether the page has a high educational value and could \
be useful in an educational setting for teaching from primary school to grade school levels using the \
additive 5-point scoring system described below. Points are accumulated based on the satisfaction of \
each criterion:

- Add 1 point if the extract provides some basic information relevant to educational topics, even if \
it includes some irrelevant or non-academic content like advertisements and promotional material.
- Add another point if the extract addresses certain elements pertinent to education but does not \
align closely with educational standards. It might mix educational content with non-educational \
material, offering a superficial overview of potentially useful topics, or presenting information in \
a disorganized manner and incoherent writing style.
- Award a third point if the extract is appropriate for educational use and introduces key concepts \
relevant to school curricula. It is coherent though it may not be comprehensive or could include some \
extraneous information. It may resemble an introductory section of a textbook or a basic tutorial that \
is suitable for learning but has notable limitations like treating concepts that are too complex for \
grade school students.
- Grant a fourth point if the extract is highly relevant and beneficial for educational purposes for a \
level not higher than grade school, exhibiting a clear and consistent writing style. It could be \
similar to a chapter from a textbook or a tutorial, offering substantial educational content, \
including exercises and solutions, with minimal irrelevant information, and the concepts aren't too \
advanced for grade school students. The content is coherent, focused, and valuable for structured \
learning.
- Bestow a fifth point if the extract is outstanding in its educational value, perfectly suited for \
teaching either at primary school or grade school. It follows detailed reasoning, the writing style is \
easy to follow and offers profound and thorough insights into the subject matter, devoid of any \
non-educational or complex content.

The extract:
{{ text }}

After examining the extract:
- Briefly justify your total score, up to 100 words.
- Conclude with the score using the format: "Educational score: <total points>"
"""

# Generic prompts per kind of dimension (a recipe's own rubric replaces them)
SCALE_RUBRIC = """\
Rate the {{ dimension }} of the document below on a scale from {{ min }} to {{ max }} ({{ max }}: the most).

The document:
{{ text }}

Briefly justify your rating, then give it as \\boxed{N}.
"""
LABELS_RUBRIC = """\
Which of these labels best describes the {{ dimension }} of the document below?
{% for label in labels %}{{ loop.index }}. {{ label }}
{% endfor %}
The document:
{{ text }}

Answer with one label, as \\boxed{label}.
"""
BUILT_IN = {"fineweb_edu": DEFAULT_RUBRIC}

NUMBER = r"(-?\d+(?:\.\d+)?)"
BOXED_NUMBER = re.compile(r"\\boxed\{\s*" + NUMBER + r"\s*\}")
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
LABELLED = re.compile(r"score\s*(?:is|of|=|:)?\s*[*:]*\s*" + NUMBER, re.IGNORECASE)
LABEL_IS = re.compile(r"label\s*(?:is|=|:)\s*[*:\s]*([\w\- ]+)", re.IGNORECASE)
LONE = re.compile(r"(?<![\w.\-])(\d+)(?!\w|\.\d)")


def rubric_text(dimension: dict) -> str:
    """The template a dimension (its recipe fields, as JSON) is annotated with."""
    rubric = dimension.get("rubric")
    if rubric is None:
        return SCALE_RUBRIC if dimension.get("scale") else LABELS_RUBRIC
    return BUILT_IN.get(rubric, rubric)


def bounds(dimension: dict) -> tuple[int, int]:
    lo, hi = dimension["scale"].split("-")
    return int(lo), int(hi)


def prompt_digest(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:16]


def compile_rubric(template: str):
    import jinja2
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(template)


def render(compiled, text: str, source: str, name: str, dimension: dict, max_chars: int) -> str:
    lo, hi = bounds(dimension) if dimension.get("scale") else (None, None)
    return compiled.render(text=text[:max_chars], source=source, dimension=name, min=lo, max=hi,
                           max_score=hi, labels=dimension.get("labels") or [])


def as_reference(value) -> str | None:
    """A document's known value of a dimension as the provenance tables hold it: a label as is, a
    number as its shortest form (2.0 and 2 are "2"), so it compares with a rounded score."""
    if value is None or isinstance(value, str):
        return value
    return f"{float(value):g}"


def agrees(value, reference: str | None) -> bool | None:
    """A score (rounded half up, as the view label_agreement's DuckDB `round` does for the scales'
    non-negative scores) or a label against a reference; None without one or without a value."""
    import math
    if reference is None or value is None:
        return None
    return as_reference(float(math.floor(value + 0.5)) if not isinstance(value, str) else value) == reference


def _answer(output: str) -> str | None:
    """The answer part (a think block skipped); None while still thinking when cut off."""
    from qwen3_recipe.synth.select import split_think
    _, answer, closed = split_think(output)
    return None if not closed and "</think>" not in output else answer


def parse_score(output: str, lo: int, hi: int) -> tuple[float | None, str]:
    """(score, how): how is `boxed`, `labelled` ("Score: N") or `digit` (the one distinct lone number
    in range); with no score, `out_of_range` (a number was given, outside lo..hi), `ambiguous`
    (several lone numbers in range, none marked) or `unparseable`. Only the answer is read: a think
    block, and an unclosed one entirely, is skipped."""
    answer = _answer(output)
    if answer is None:
        return None, "unparseable"
    for how, pattern in (("boxed", BOXED_NUMBER), ("labelled", LABELLED)):
        found = pattern.findall(answer)
        if found:
            value = float(found[-1])
            return (value, how) if lo <= value <= hi else (None, "out_of_range")
    numbers = [int(n) for n in LONE.findall(answer)]
    in_range = {n for n in numbers if lo <= n <= hi}
    if len(in_range) == 1:
        return float(in_range.pop()), "digit"
    return None, "ambiguous" if in_range else "out_of_range" if numbers else "unparseable"


def _as_label(value: str, labels: list[str]) -> str | None:
    """A label named by its text (any case) or by its number in the rubric's list (1-based)."""
    value = value.strip().strip("*.`'\"").strip()
    for label in labels:
        if value.lower() == label.lower():
            return label
    return labels[int(value) - 1] if value.isdigit() and 1 <= int(value) <= len(labels) else None


def parse_label(output: str, labels: list[str]) -> tuple[str | None, str]:
    """(label, how): how is `boxed` (\\boxed{label} or \\boxed{its number}), `labelled` ("Label: x"),
    `named` (the one label the answer names, as a word) or `number` (the one distinct lone number that
    is a label's); with no label, `not_a_label` (a marked answer that is none), `ambiguous` (several
    labels or numbers named, none marked) or `unparseable`."""
    answer = _answer(output)
    if answer is None:
        return None, "unparseable"
    for how, pattern in (("boxed", BOXED), ("labelled", LABEL_IS)):
        found = pattern.findall(answer)
        if found:
            label = _as_label(found[-1], labels)
            return (label, how) if label else (None, "not_a_label")
    named = {label for label in labels if re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", answer, re.IGNORECASE)}
    if len(named) == 1:
        return named.pop(), "named"
    numbers = {int(n) for n in LONE.findall(answer) if 1 <= int(n) <= len(labels)}
    if not named and len(numbers) == 1:
        return labels[numbers.pop() - 1], "number"
    return None, "ambiguous" if named or numbers else "unparseable"
