"""Benchmark rows -> the items that evals (and verifiers) read: the rendered prompt, the gold in
the verifier's terms, and every field the verifier needs (options, tests, entry point,
instructions, baseline answer), named by the catalog entry's `*_field` keys.

One place for this, so that a benchmark is shown to the model, scored and audited the same way
everywhere; `row_problems` says at `validate` what a benchmark's rows lack.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from qwen3_recipe.catalog.specs import CodeFields, EvalSpec
from qwen3_recipe.verify.answers import LETTERS

_MISSING = object()

LCB_STARTER = ("### Format: You will use the following starter code to write the solution to the problem "
               "and enclose your code within delimiters.\n```python\n{starter_code}\n```\n\n")
LCB_STDIN = ("### Format: Read the inputs from stdin solve the problem and write the answer to stdout (do not "
             "directly test on the sample inputs). Enclose your code within delimiters as follows. Ensure that "
             "when the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT."
             "\n```python\n# YOUR CODE HERE\n```\n\n")
TEMPLATES = {
    "multiple_choice": "{question}\n\n{choices}\n\nAnswer with the letter of the correct option.",
    "humaneval": "Complete the following Python function. Give the whole function in one ```python block."
                 "\n\n```python\n{starter_code}```",
    "script": "{question}\nYour code should pass this test:\n\n```python\n{examples}\n```\n\n"
              "Give the code in one ```python block.",
    "livecodebench": "### Question:\n{question}\n\n{lcb_format}"
                     "### Answer: (use the provided format with backticks)\n\n",
}


def field(row: dict, path: str | None, default: Any = _MISSING) -> Any:
    """`row[path]`, a dotted path descending into dicts and JSON-text columns; `default` (or
    KeyError) when a part is absent."""
    if path is None:
        return None if default is _MISSING else default
    if path in row:
        return row[path]
    node: Any = row
    for part in path.split("."):
        if isinstance(node, str) and node.lstrip().startswith("{"):
            node = json.loads(node)
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise KeyError(path)
            return default
        node = node[part]
    return node


def question_text(value: Any) -> str:
    """A question column as text: a list of chat turns gives the first turn's content."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return str(value[0].get("content", ""))
    return str(value)


def options(spec: EvalSpec, row: dict) -> list[str]:
    cols = spec.choices_field
    values = [field(row, c) for c in cols] if isinstance(cols, list) else list(field(row, cols))
    return [str(v).strip() for v in values]


def gold_letter(spec: EvalSpec, gold: Any, opts: list[str]) -> str:
    """The gold as a letter, from an index, a letter or the option's text."""
    fmt = spec.answer_format
    if fmt == "auto":
        is_letter = isinstance(gold, str) and re.fullmatch(r"\(?[A-J]\)?", gold.strip())
        fmt = "index" if isinstance(gold, int) and not isinstance(gold, bool) else \
            "letter" if is_letter else "text"
    if fmt == "index":
        i = int(gold)
    elif fmt == "letter":
        i = LETTERS.index(str(gold).strip().strip("()").upper())
    else:
        want = str(gold).strip()
        if want not in opts:
            raise ValueError(f"the gold {want[:60]!r} is none of the options")
        i = opts.index(want)
    if not 0 <= i < len(opts):
        raise ValueError(f"gold option {i} out of range for {len(opts)} options")
    return LETTERS[i]


def _multiple_choice(spec: EvalSpec, row: dict, item_id: str, gold: Any) -> dict:
    opts = options(spec, row)
    letter = gold_letter(spec, gold, opts)
    if spec.shuffle_choices:  # seeded by benchmark seed and item id: the same order every run
        right = opts[LETTERS.index(letter)]
        order = list(range(len(opts)))
        random.Random(f"{spec.shuffle_seed}:{item_id}").shuffle(order)
        opts = [opts[j] for j in order]
        letter = LETTERS[opts.index(right)]
    return {"choices": opts, "gold": letter,
            "choices_text": "\n".join(f"{LETTERS[j]}. {o}" for j, o in enumerate(opts))}


def code_fields(spec: CodeFields, row: dict) -> dict:
    """What the code verifier reads from a row: tests in their convention, entry point, starter
    code, test imports, example tests (benchmark rows and code prompt sets alike)."""
    tests: Any = None
    cols = spec.tests_field if isinstance(spec.tests_field, list) else [spec.tests_field]
    if spec.test_format == "livecodebench":
        from qwen3_recipe.verify.code_tests import decode_cases
        tests = [case for c in cols for case in decode_cases(field(row, c))]
    else:
        tests = field(row, cols[0])
    out = {"tests": tests, "test_format": spec.test_format}
    entry = field(row, spec.entry_point_field, None)  # LiveCodeBench: only functional problems have one
    if entry is not None:
        out["entry_point"] = out["fn_name"] = str(entry)
    if spec.starter_code_field:
        out["starter_code"] = str(field(row, spec.starter_code_field) or "")
    if spec.test_imports_field:
        out["test_imports"] = list(field(row, spec.test_imports_field) or [])
    if spec.example_tests_field:
        ex = field(row, spec.example_tests_field)
        out["examples"] = ex[0] if isinstance(ex, list) and ex else str(ex or "")
    return out


def render(spec: EvalSpec, item: dict) -> str:
    """The user message for an item (see TEMPLATES; `prompt_template` overrides)."""
    key = spec.test_format if spec.verifier == "code" else spec.verifier
    template = spec.prompt_template or TEMPLATES.get(key or "", "{question}")
    starter = item.get("starter_code") or ""
    lcb = LCB_STARTER.format(starter_code=starter) if starter.strip() else LCB_STDIN
    return template.format(question=item["question"], choices=item.get("choices_text", ""),
                           starter_code=starter, examples=item.get("examples", ""), lcb_format=lcb)


def benchmark_item(name: str, spec: EvalSpec, row: dict, index: int) -> dict:
    """One benchmark row as an item: id, question, prompt, gold, verifier fields, and the row."""
    item_id = str(field(row, spec.id_field, None) if spec.id_field else row.get("id", f"{name}-{index}"))
    if item_id == "None":
        item_id = f"{name}-{index}"
    gold = field(row, spec.answer_field) if spec.answer_field else None
    if gold is not None and spec.answer_regex:
        m = re.search(spec.answer_regex, str(gold), re.MULTILINE)
        gold = m.group(1).strip() if m else gold
    item: dict[str, Any] = {"id": item_id, "benchmark": name, "verifier": spec.verifier,
                            "question": question_text(field(row, spec.question_field)),
                            "gold": None if gold is None else str(gold)}
    if spec.verifier == "multiple_choice":
        item.update(_multiple_choice(spec, row, item_id, gold))
    elif spec.verifier == "code":
        item.update(code_fields(spec, row))
    elif spec.verifier == "ifeval":
        item.update(instruction_id_list=list(field(row, spec.instructions_field)),
                    kwargs=list(field(row, spec.kwargs_field)), key=row.get("key", item_id),
                    prompt=item["question"])
    elif spec.verifier == "judge" and spec.baseline_field:
        item["baseline"] = str(field(row, spec.baseline_field))
    item["rendered_prompt"] = render(spec, item)
    return item


def in_window(spec: EvalSpec, row: dict) -> bool:
    if not spec.date_field or not (spec.since or spec.until):
        return True
    date = str(field(row, spec.date_field, ""))[:len("YYYY-MM-DD")]
    return (not spec.since or date >= spec.since) and (not spec.until or date < spec.until)


REQUIRED = {
    "multiple_choice": ("choices_field", "answer_field"),
    "code": ("tests_field", "test_format"),
    "ifeval": ("instructions_field", "kwargs_field"),
    "math": ("answer_field",),
    "exact": ("answer_field",),
}


def spec_problems(spec: EvalSpec) -> list[tuple[str, str]]:
    """(key, message) for what the entry must declare for its verifier to score it."""
    out = [(k, f"a '{spec.verifier}' benchmark needs `{k}`") for k in REQUIRED.get(spec.verifier, ())
           if getattr(spec, k) in (None, "", [])]
    if spec.verifier == "code" and spec.test_format in ("humaneval",) and not spec.entry_point_field:
        out.append(("entry_point_field", "HumanEval-style tests call `check(<entry point>)`: "
                                         "name the column with `entry_point_field`"))
    if spec.verifier == "code" and spec.test_format == "humaneval" and not spec.starter_code_field:
        out.append(("starter_code_field", "HumanEval-style items need the prompt (`starter_code_field`)"))
    return out


def row_problems(name: str, spec: EvalSpec, rows: list[dict]) -> list[str]:
    """Why these rows cannot be scored (first problem per row kind; empty when they can)."""
    out: list[str] = []
    for i, row in enumerate(rows):
        try:
            benchmark_item(name, spec, row, i)
        except (KeyError, ValueError, TypeError) as e:
            what = f"no column {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
            out.append(f"row {i + 1}: {what}")
            break
    return out
