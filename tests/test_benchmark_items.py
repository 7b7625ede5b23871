"""Benchmarks of the Qwen3 report scored end to end from rows shaped like their hub datasets'
(tests/benchmark_rows/): the shipped `evals/` entries' field mappings, the rendered prompts, and a
right and a wrong answer per benchmark with the real verifiers (sandbox, math-verify)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qwen3_recipe.catalog import load_catalogs
from qwen3_recipe.catalog.items import benchmark_item, in_window
from qwen3_recipe.catalog.rows import entry_rows
from qwen3_recipe.verify import build_verifier
from qwen3_recipe.verify.judge import battles, parse_label

REPO = Path(__file__).resolve().parents[1]
ROWS = Path(__file__).resolve().parent / "benchmark_rows"
NAMES = ["humaneval_plus", "mbpp_plus", "livecodebench", "mmlu_redux", "gpqa_diamond", "math500",
         "ifeval", "arena_hard"]


def local_catalog(tmp: Path, names=NAMES) -> Path:
    """The shipped entries, pointed at the local rows instead of the hub."""
    entries = {}
    for f in sorted((REPO / "evals").glob("*.yaml")):
        entries.update(yaml.safe_load(f.read_text()) or {})
    out = {}
    for name in names:
        entry = {k: v for k, v in entries[name].items() if k not in ("hf_id", "config", "revision")}
        out[name] = entry | {"path": str(ROWS / f"{name}.jsonl")}
    folder = tmp / "evals"
    folder.mkdir()
    (folder / "bench.yaml").write_text(yaml.safe_dump(out, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> dict[str, list[dict]]:
    folder = local_catalog(tmp_path_factory.mktemp("cat"))
    cat = load_catalogs(folder.parent, evals=str(folder))
    out = {}
    for name, entry in cat.evals.items():
        rows = list(entry_rows(name, entry.spec, entry.local_path()))
        out[name] = [benchmark_item(name, entry.spec, r, i) for i, r in enumerate(rows) if in_window(entry.spec, r)]
    return out


def verdict(items, name, response, i=0):
    item = items[name][i]
    kind = item["verifier"]
    v = build_verifier({"type": kind, **({"timeout_s": 10, "memory_mb": 512} if kind == "code" else {})})
    return v.verify(response, item["gold"], item)


def code(body: str) -> str:
    return f"<think>\nLet me write it.\n</think>\n\n```python\n{body}\n```"


def test_humaneval_plus(items):
    item = items["humaneval_plus"][0]
    assert item["entry_point"] == "has_close_elements" and "check(candidate)" in item["tests"]
    assert "def has_close_elements" in item["rendered_prompt"]  # the signature is shown
    right = ("from typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
             "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])")
    assert verdict(items, "humaneval_plus", code(right)).ok
    body_only = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])"
    assert verdict(items, "humaneval_plus", code(body_only)).ok
    wrong = verdict(items, "humaneval_plus", code(right.replace("< threshold", "<= threshold / 2")))
    assert (wrong.ok, wrong.reason) == (False, "wrong_answer")
    # the canonical solution (answer_field) is not a test: once it was, and `return a - b` passed
    assert item["gold"].strip().startswith("for idx") and item["tests"] != item["gold"]
    exits = verdict(items, "humaneval_plus",
                    code("import sys\ndef has_close_elements(n, t):\n    return False\nsys.exit(0)"))
    assert exits.reason == "early_exit"


def test_mbpp_plus(items):
    item = items["mbpp_plus"][0]
    assert "assert is_not_prime(2) == False" in item["rendered_prompt"]  # names the function
    right = "def is_not_prime(n):\n    if n < 2:\n        return True\n" \
            "    return any(n % d == 0 for d in range(2, int(n ** 0.5) + 1))"
    assert verdict(items, "mbpp_plus", code(right)).ok
    # passes the three base asserts shown, fails the plus inputs (1, True, 524287...)
    wrong = "def is_not_prime(n):\n    return n in (10, 35) or n % 2 == 0 and n != 2"
    assert verdict(items, "mbpp_plus", code(wrong)).reason == "wrong_answer"


def test_livecodebench_window_and_both_case_kinds(items):
    lcb = items["livecodebench"]
    assert [it["id"] for it in lcb] == ["3708", "abc390_q"]  # the 2023 problem is outside v5's window
    func, stdin = lcb
    assert func["fn_name"] == "zigzagTraversal" and len(func["tests"]) == 4  # public + decompressed private
    assert "class Solution" in func["rendered_prompt"] and "starter code" in func["rendered_prompt"]
    assert "stdin" in stdin["rendered_prompt"] and "fn_name" not in stdin
    right_f = ("class Solution:\n    def zigzagTraversal(self, grid: List[List[int]]) -> List[int]:\n"
               "        cells = [v for i, row in enumerate(grid) for v in (row if i % 2 == 0 else row[::-1])]\n"
               "        return cells[::2]")
    assert verdict(items, "livecodebench", code(right_f), 0).ok
    wrong_f = right_f.replace("cells[::2]", "cells[1::2]")
    assert verdict(items, "livecodebench", code(wrong_f), 0).reason == "wrong_answer"
    right_s = "n = int(input())\nfor _ in range(n):\n    print('First' if int(input()) % 2 else 'Second')"
    assert verdict(items, "livecodebench", code(right_s), 1).ok
    # the public example's answer printed without computing: the private cases catch it
    copied = "print('First\\nFirst\\nFirst\\nSecond\\nFirst\\nSecond')"
    v = verdict(items, "livecodebench", code(copied), 1)
    assert (v.reason, v.details["case"]) == ("wrong_answer", 1)


def test_mmlu_redux_index_gold(items):
    item = items["mmlu_redux"][0]
    assert item["gold"] == "B" and item["choices"] == ["0", "4", "2", "6"]
    assert "A. 0\nB. 4\nC. 2\nD. 6" in item["rendered_prompt"]
    assert verdict(items, "mmlu_redux", "<think>\nDegree 4.\n</think>\n\nThe answer is (B).").ok
    assert not verdict(items, "mmlu_redux", "<think>\nB? no.\n</think>\n\nThe answer is (D).").ok
    # the right letter only while thinking, then another committed: wrong
    assert not verdict(items, "mmlu_redux", "<think>\nThe answer is B\n</think>\n\nAnswer: C").ok
    # a letter outside the options is not an answer
    assert verdict(items, "mmlu_redux", "<think>\nx\n</think>\n\nThe answer is (F).").reason == "no_answer"


def test_gpqa_text_gold_shuffled_with_a_fixed_seed(items, tmp_path):
    a, b = items["gpqa_diamond"]
    assert a["choices"][ord(a["gold"]) - ord("A")] == "It becomes one quarter"
    assert sorted(a["choices"]) == sorted(["It becomes one quarter", "It doubles", "It halves", "It is unchanged"])
    folder = local_catalog(tmp_path, ["gpqa_diamond"])  # built again from scratch: the same order
    entry = load_catalogs(folder.parent, evals=str(folder)).evals["gpqa_diamond"]
    row = next(iter(entry_rows("gpqa_diamond", entry.spec, entry.local_path())))
    assert benchmark_item("gpqa_diamond", entry.spec, row, 0)["choices"] == a["choices"]
    right = f"<think>\nE scales as 1/L^2.\n</think>\n\nThe answer is ({a['gold']})."
    assert verdict(items, "gpqa_diamond", right).ok
    other = next(x for x in "ABCD" if x != a["gold"])
    assert not verdict(items, "gpqa_diamond", f"<think>\nhm\n</think>\n\nThe answer is ({other}).").ok


def test_gpqa_shuffle_moves_the_gold():
    """Over many item ids the seeded shuffle puts the correct option everywhere (it is column 1)."""
    from qwen3_recipe.catalog.specs import EvalSpec
    spec = EvalSpec(path="x", verifier="multiple_choice", answer_field="Correct Answer", answer_format="text",
                    choices_field=["Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"],
                    shuffle_choices=True, id_field="Record ID", question_field="Question")
    row = {"Question": "q", "Correct Answer": "r", "Incorrect Answer 1": "w1", "Incorrect Answer 2": "w2",
           "Incorrect Answer 3": "w3"}
    golds = [benchmark_item("gpqa", spec, row | {"Record ID": f"rec{i}"}, i)["gold"] for i in range(200)]
    assert set(golds) == set("ABCD") and max(golds.count(x) for x in "ABCD") < 80


def test_humaneval_prompt_helpers_stay_defined(items):
    """HumanEval/10-style: the prompt defines a helper the answer calls; a whole-function answer
    must still see it (once only the prompt's imports were kept, and right answers failed)."""
    base = items["humaneval_plus"][0]
    prompt = ('def is_palindrome(string: str) -> bool:\n    """ Test if given string is a palindrome """\n'
              '    return string == string[::-1]\n\n\ndef make_palindrome(string: str) -> str:\n'
              '    """ Find the shortest palindrome that begins with a supplied string. """\n')
    tests = "def check(candidate):\n    assert candidate('') == ''\n    assert candidate('cat') == 'catac'\n" \
            "    assert candidate('cata') == 'catac'\n"
    item = dict(base, starter_code=prompt, entry_point="make_palindrome", tests=tests)
    v = build_verifier({"type": "code", "timeout_s": 10})
    right = ("def make_palindrome(string: str) -> str:\n    for i in range(len(string) + 1):\n"
             "        if is_palindrome(string[i:]):\n            return string + string[:i][::-1]\n")
    assert v.verify(code(right), None, item).ok
    assert not v.verify(code(right.replace("[::-1]", "")), None, item).ok


def test_escaped_dollar_gold_is_a_dollar_sign():
    v = build_verifier({"type": "math"})
    assert v.verify("<think>\nx\n</think>\n\n\\boxed{18.90}", "\\$18.90", {}).ok
    assert v.verify("<think>\nx\n</think>\n\n\\boxed{32348}", "\\$32,\\!348", {}).ok
    assert not v.verify("<think>\nx\n</think>\n\n\\boxed{18}", "\\$18.90", {}).ok


def test_math500(items):
    item = items["math500"][0]
    assert item["rendered_prompt"] == item["question"]
    assert verdict(items, "math500", "<think>\nr=3\n</think>\n\n$\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$").ok
    assert not verdict(items, "math500", "<think>\nr=3\n</think>\n\n$\\boxed{(3, \\pi)}$").ok
    cut = verdict(items, "math500", "<think>\nthe answer is \\boxed{(3, \\frac{\\pi}{2})}")
    assert cut.reason == "unclosed_think"


def test_ifeval_item_fields(items):
    item = items["ifeval"][0]
    assert item["id"] == "1000" and item["rendered_prompt"] == item["question"]
    assert item["instruction_id_list"][0] == "punctuation:no_comma" and len(item["kwargs"]) == 3
    assert item["kwargs"][2]["num_words"] == 300 and item["kwargs"][0]["num_words"] is None


def test_arena_hard_item_and_verdicts(items):
    item = items["arena_hard"][0]
    assert item["question"].startswith("Use ABC notation") and "baseline" not in item  # rows carry none
    assert parse_label("My final verdict is: [[B>A]]") == "B>A"
    assert parse_label("[[A>B]] ... actually [[B>A]]") is None  # contradictory
    assert parse_label("no label") is None
    assert battles("B>>A", "A>B") == [(1.0, 3), (1.0, 1)]  # model is B in game 1, A in game 2
    scripted = {"good": "[[B>A]]", "bad": "[[A>>B]]"}

    def judge(games):  # a scripted judge: prefers whichever side holds the model's answer "good"
        out = []
        for i, messages in enumerate(games):
            text = messages[1]["content"]
            model_side = "B" if i == 0 else "A"
            if "GOOD" in text:
                out.append("[[B>A]]" if model_side == "B" else "[[A>B]]")
            else:
                out.append(scripted["bad"] if model_side == "B" else "[[B>>A]]")
        return out
    v = build_verifier({"type": "judge", "judge": judge})
    item = dict(item, baseline="X:1\nT:Tune\nK:C\nCDEF|")
    win = v.verify("<think>\nfolk\n</think>\n\nGOOD tune", None, item)
    loss = v.verify("<think>\nfolk\n</think>\n\nbad tune", None, item)
    assert (win.reason, win.score) == ("win", 1.0) and (loss.reason, loss.score) == ("loss", 0.0)
    assert v.verify("<think>\nGOOD", None, item).reason == "unclosed_think"
