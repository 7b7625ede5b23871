"""Verifiers: score one model response against a gold answer (rejection sampling, RL, evals).

Registered by the recipe's `synth.*.verifier.type`; `@register("name")` adds a type. Every
verifier judges only the committed answer after `</think>`; a response cut off while thinking
is "unclosed_think" whatever it contains.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from qwen3_recipe.verify import answers as A


@dataclass
class Verdict:
    ok: bool
    score: float
    """0..1 (1.0 for ok)."""
    reason: str
    """correct, wrong_answer, no_answer, no_gold, unclosed_think, malformed_think, timeout,
    memory, runtime_error, syntax_error, no_tests, bad_gold; for code also early_exit (the
    program ended before the tests did: a reward hack) and missing_function."""
    extracted: str | None = None
    details: dict = field(default_factory=dict)


def _fail(reason: str, extracted: str | None = None, **details: Any) -> Verdict:
    return Verdict(False, 0.0, reason, extracted, details)


def _judge(ok: bool, extracted: str | None, **details: Any) -> Verdict:
    return Verdict(ok, float(ok), "correct" if ok else "wrong_answer", extracted, details)


def _answer(response: str, extract: Callable[[str], str | None] = A.extract) -> tuple[str | None, Verdict | None]:
    """The committed answer, or the verdict that there is none (think block left open, or
    nothing `extract` can find)."""
    if A.think_state(response) == "unclosed":
        return None, _fail("unclosed_think")
    ans = extract(response)
    return (ans, None) if ans is not None else (None, _fail("no_answer"))


class Verifier:
    type: ClassVar[str] = ""

    def verify(self, response: str, gold: str | None, item: dict | None = None) -> Verdict:
        raise NotImplementedError


REGISTRY: dict[str, type[Verifier]] = {}


def register(name: str):
    """Class decorator: make a Verifier subclass buildable as `{"type": name, ...}`."""
    def deco(cls: type[Verifier]) -> type[Verifier]:
        cls.type = name
        REGISTRY[name] = cls
        return cls
    return deco


def build_verifier(cfg: Any) -> Verifier:
    """A verifier from a recipe model (`synth.Verifier`) or a plain dict with "type"."""
    params = dict(cfg.model_dump() if hasattr(cfg, "model_dump") else cfg)
    kind = params.pop("type", None)
    if kind not in REGISTRY:
        raise ValueError(f"unknown verifier type {kind!r} (known: {', '.join(sorted(REGISTRY))})")
    try:
        return REGISTRY[kind](**params)
    except TypeError as e:
        raise ValueError(f"verifier {kind!r}: {e}") from None


@lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> list:
    """A gold answer is a bare expression: parsed as if boxed. Parsed bare, math-verify reads
    only a prefix of it (`10^{-4}` as 10, `3\\sqrt{2}` as 3, a tuple as its first element), and
    wrong answers matched it. Golds already in `$...$` or `\\boxed{}` are parsed as they are."""
    from math_verify import parse
    t = _timeout()
    if re.search(r"(?<!\\)\$", gold) or "\\boxed" in gold:  # a `\$` is a dollar sign, not math
        return parse(gold, parsing_timeout=t)
    return parse(f"\\boxed{{{gold}}}", parsing_timeout=t) or parse(gold, parsing_timeout=t)


def _timeout() -> int | None:
    """math-verify bounds its work with signal.alarm, which only the main thread may use:
    worker threads run without its timeout (cap the input upstream if that matters)."""
    return 5 if threading.current_thread() is threading.main_thread() else None


@register("math")
class MathVerifier(Verifier):
    """Equivalence by math-verify (LaTeX / numeric / symbolic), on the last boxed answer, else
    whatever math-verify extracts from the committed text."""

    def verify(self, response, gold, item=None):
        from math_verify import parse, verify
        if A.think_state(response) == "unclosed":
            return _fail("unclosed_think")
        part = A.after_think(response)
        boxed = A.last_boxed(part)
        pred = parse(f"\\boxed{{{boxed}}}" if boxed is not None else part,
                     parsing_timeout=_timeout()) if part else []
        extracted = boxed if boxed is not None else (str(pred[-1]) if pred else None)
        if not pred:
            return _fail("no_answer", extracted)
        if gold is None:
            return _fail("no_gold", extracted)
        gold_p = _parse_gold(str(gold))
        if not gold_p:
            return _fail("bad_gold", extracted, gold=gold)
        return _judge(bool(verify(gold_p, pred, timeout_seconds=_timeout())), extracted)


@register("exact")
class ExactVerifier(Verifier):
    def __init__(self, normalize: bool = True):
        self.normalize = normalize

    def verify(self, response, gold, item=None):
        ans, failed = _answer(response)
        if failed:
            return failed
        if gold is None:
            return _fail("no_gold", ans)
        norm = A.normalize if self.normalize else str.strip
        return _judge(norm(ans) == norm(str(gold)), ans)


@register("regex")
class RegexVerifier(Verifier):
    """Full match of the extracted answer; `{gold}` in the pattern stands for the escaped gold."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        if "{gold}" not in pattern:
            self._rx = re.compile(pattern)

    def verify(self, response, gold, item=None):
        ans, failed = _answer(response)
        if failed:
            return failed
        if "{gold}" in self.pattern:
            if gold is None:
                return _fail("no_gold", ans)
            rx = re.compile(self.pattern.replace("{gold}", re.escape(str(gold))))
        else:
            rx = self._rx
        return _judge(rx.fullmatch(ans) is not None, ans)


@register("multiple_choice")
class MultipleChoiceVerifier(Verifier):
    """The letter of the committed answer against the gold letter. With the item's `choices`
    (catalog/items.py normalises the gold to a letter), only their letters count as answers."""

    def verify(self, response, gold, item=None):
        n = len((item or {}).get("choices") or [])
        letters = A.LETTERS[:n] if n else A.LETTERS
        letter, failed = _answer(response, lambda t: A.choice_letter(t, letters))
        if failed:
            return failed
        if gold is None:
            return _fail("no_gold", letter)
        want = A.choice_letter(str(gold), letters) or str(gold).strip().strip("()").upper()
        return _judge(letter == want, letter)


@register("format")
class FormatVerifier(Verifier):
    """Well-formed output: the think block absent or opened and closed once, in order, and an
    extractable final answer. `item["think_in_prompt"]` accepts a lone `</think>` (templates
    that open the block in the prompt)."""

    def verify(self, response, gold=None, item=None):
        state = A.think_state(response)
        if state == "malformed" and (item or {}).get("think_in_prompt") \
                and A.OPEN not in response and response.count(A.CLOSE) == 1:
            state = "closed"
        if state in ("unclosed", "malformed"):
            return _fail(f"{state}_think", think=state)
        ans = A.final_answer(response)
        if ans is None:
            return _fail("no_answer", think=state)
        return Verdict(True, 1.0, "correct", ans, {"think": state})


@register("code")
class CodeVerifier(Verifier):
    """Runs the program in the sandbox against the item's tests (`item["tests"]`, in the
    convention `item["test_format"]` names: code_tests.py). Correct only when the harness ran
    every test to its end; a program that exits early is `early_exit`, whatever its exit code.
    `gold` (a reference solution) is never used as tests."""

    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 1024):
        self.timeout_s, self.memory_mb = float(timeout_s), int(memory_mb)

    def verify(self, response, gold, item=None):
        from qwen3_recipe.verify.code_tests import run_tests
        if A.think_state(response) == "unclosed":
            return _fail("unclosed_think")
        code = A.extract_code(response)
        if not code.strip():
            return _fail("no_answer")
        out = run_tests(code, item or {}, self.timeout_s, self.memory_mb)
        if out is None:
            return _fail("no_tests", code)
        info = {"passed": out.passed, "cases": out.total, **out.details}
        if out.ok:
            return Verdict(True, 1.0, "correct", code, info)
        return _fail(out.reason, code, **info)
