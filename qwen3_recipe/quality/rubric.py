"""The annotation prompt (a jinja2 template) and reading a score out of the annotator's answer."""

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

NUMBER = r"(-?\d+(?:\.\d+)?)"
BOXED = re.compile(r"\\boxed\{\s*" + NUMBER + r"\s*\}")
LABELLED = re.compile(r"score\s*(?:is|of|=|:)?\s*[*:]*\s*" + NUMBER, re.IGNORECASE)
LONE = re.compile(r"(?<![\w.\-])(\d+)(?![\w.])")


def rubric_text(rubric: str | None) -> str:
    return DEFAULT_RUBRIC if rubric is None else rubric


def prompt_digest(template: str) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:16]


def compile_rubric(template: str):
    import jinja2
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(template)


def render(compiled, text: str, source: str, max_score: int, max_chars: int) -> str:
    return compiled.render(text=text[:max_chars], source=source, max_score=max_score)


def parse_score(output: str, max_score: int) -> tuple[float | None, str]:
    """(score, how): how is `boxed`, `labelled` ("Score: N") or `digit` (the first lone number in
    range); with no score, `out_of_range` (a number was given, outside 0..max_score) or `unparseable`.
    Only the answer is read: a think block, and an unclosed one entirely, is skipped."""
    from qwen3_recipe.synth.select import split_think
    _, answer, closed = split_think(output)
    if not closed and "</think>" not in output:
        return None, "unparseable"  # still thinking when cut off
    for how, pattern in (("boxed", BOXED), ("labelled", LABELLED)):
        found = pattern.findall(answer)
        if found:
            value = float(found[-1])
            return (value, how) if 0 <= value <= max_score else (None, "out_of_range")
    numbers = [int(n) for n in LONE.findall(answer)]
    for n in numbers:
        if 0 <= n <= max_score:
            return float(n), "digit"
    return None, "out_of_range" if numbers else "unparseable"
