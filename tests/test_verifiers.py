"""Verifiers with the real math-verify and the real subprocess sandbox."""

from __future__ import annotations

import ast
import select
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from qwen3_recipe.recipe.schema.synth import CodeVerifier, MathVerifier, RegexVerifier
from qwen3_recipe.verify import (
    Verdict,
    Verifier,
    build_verifier,
    extract_code,
    final_answer,
    majority,
    network_mechanism,
    register,
    run_python,
)

THINK = "<think>\nMaybe \\boxed{3}? No, recheck.\n</think>\n\n"


# -- math ----------------------------------------------------------------------------------

@pytest.mark.parametrize("response,gold,ok,reason", [
    ("So the answer is $\\boxed{42}$.", "42", True, "correct"),
    # a bare gold is parsed whole: once `10^{-4}` read as 10 and `3\\sqrt{2}` as 3
    ("\\boxed{10}", "10^{-4}", False, "wrong_answer"),
    ("\\boxed{10^{-4}}", "10^{-4}", True, "correct"),
    ("\\boxed{3}", "3\\sqrt{2}", False, "wrong_answer"),
    ("\\boxed{(3, \\pi)}", "\\left( 3, \\frac{\\pi}{2} \\right)", False, "wrong_answer"),
    ("\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True, "correct"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", True, "correct"),
    ("\\boxed{0.5}", "\\frac{1}{2}", True, "correct"),
    ("\\boxed{\\dfrac{2}{4}}", "$\\frac12$", True, "correct"),
    ("We get \\boxed{x^{2}}", "$x^2$", True, "correct"),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", False, "wrong_answer"),
    ("\\boxed{41}", "42", False, "wrong_answer"),
    ("I cannot solve this.", "42", False, "no_answer"),
    (THINK + "The answer is \\boxed{4}.", "4", True, "correct"),
    (THINK + "The answer is \\boxed{4}.", "3", False, "wrong_answer"),
    ("<think>\nso it is \\boxed{4}", "4", False, "unclosed_think"),
    (THINK + "Hence the result: $\\frac{7}{2}$", "3.5", True, "correct"),
])
def test_math(response, gold, ok, reason):
    v = build_verifier(MathVerifier(type="math")).verify(response, gold)
    assert (v.ok, v.reason) == (ok, reason), v
    assert v.score == float(ok)


def test_math_extracted_and_no_gold():
    v = build_verifier({"type": "math"}).verify(THINK + "\\boxed{\\frac{1}{2}}", None)
    assert (v.ok, v.reason, v.extracted) == (False, "no_gold", "\\frac{1}{2}")


def test_math_from_worker_threads():
    verifier = build_verifier({"type": "math"})
    cases = [(f"\\boxed{{\\frac{{{i}}}{{2}}}}", str(i / 2), True) for i in range(1, 13)]
    cases += [(f"\\boxed{{{i + 1}}}", str(i), False) for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: verifier.verify(c[0], c[1]).ok, cases * 2))
    assert got == [c[2] for c in cases * 2]


# -- answers, majority ----------------------------------------------------------------------

def test_final_answer_and_majority():
    assert final_answer(THINK + "So \\boxed{\\dfrac{1}{2}}.") == "\\frac{1}{2}"
    assert final_answer("The answer is: **Paris**.") == "paris"
    assert final_answer("x + 1") == "x+1"
    assert final_answer("<think>unfinished \\boxed{2}") is None
    assert final_answer("A long explanation\nwith no clear answer at all.") is None
    answers = [final_answer(r) for r in
               ["\\boxed{7}", "\\boxed{ 7 }", "\\boxed{8}", "nothing\nhere", "Answer: 7."]]
    assert majority(answers) == ("7", 3)
    assert majority(["a", "b", "b", "a"]) == ("a", 2)
    assert majority([None, None]) == (None, 0)


# -- exact, regex, multiple choice, format --------------------------------------------------

def test_exact():
    v = build_verifier({"type": "exact"})
    assert v.verify(THINK + "The answer is  New   York.", "new york").ok
    assert v.verify("$Paris$", "paris").ok
    assert v.verify("Lyon", "Paris").reason == "wrong_answer"
    raw = build_verifier({"type": "exact", "normalize": False})
    assert not raw.verify("paris", "Paris").ok and raw.verify(" Paris ", "Paris").ok


def test_regex():
    v = build_verifier(RegexVerifier(type="regex", pattern=r"\d{3}-\d{4}"))
    assert v.verify("Call \\boxed{555-1234}", None).ok
    assert v.verify("\\boxed{555-12345}", None).reason == "wrong_answer"
    g = build_verifier({"type": "regex", "pattern": r"(?i){gold}( units)?"})
    assert g.verify("The answer is 1+1 UNITS.", "1+1").ok  # gold escaped: "+" is literal
    assert not g.verify("The answer is 11 units.", "1+1").ok
    assert g.verify("answer: x", None).reason == "no_gold"


@pytest.mark.parametrize("response,letter", [
    ("\\boxed{C}", "C"), ("\\boxed{\\text{(B)}}", "B"), ("The answer is (D).", "D"),
    (THINK + "Answer: b", "B"), ("I think it must be E", "E"),
    ("Between A and B, I would choose J", "J"), ("A is tempting but (G) holds", "G"),
])
def test_multiple_choice(response, letter):
    v = build_verifier({"type": "multiple_choice"})
    assert v.verify(response, letter).ok and v.verify(response, f"({letter})").ok
    bad = v.verify(response, "F" if letter != "F" else "A")
    assert (bad.ok, bad.reason, bad.extracted) == (False, "wrong_answer", letter)
    assert v.verify("no idea", "A").reason == "no_answer"


@pytest.mark.parametrize("response,ok,reason", [
    ("<think>\nhmm\n</think>\n\nThe answer is \\boxed{3}.", True, "correct"),
    ("\\boxed{3}", True, "correct"),
    ("<think>\nhmm, \\boxed{3}", False, "unclosed_think"),
    ("<think>a</think><think>b</think>\\boxed{3}", False, "malformed_think"),
    ("</think> a <think> \\boxed{3}", False, "malformed_think"),
    ("<think>\nhmm\n</think>\n\nLet me explain at length\nwithout concluding.", False, "no_answer"),
])
def test_format(response, ok, reason):
    v = build_verifier({"type": "format"}).verify(response, None)
    assert (v.ok, v.reason) == (ok, reason)


def test_format_think_opened_in_prompt():
    v = build_verifier({"type": "format"})
    assert not v.verify("hmm\n</think>\n\\boxed{1}", None).ok
    assert v.verify("hmm\n</think>\n\\boxed{1}", None, {"think_in_prompt": True}).ok


def test_registry():
    @register("always")
    class Always(Verifier):
        def __init__(self, score: float = 1.0):
            self.score = score

        def verify(self, response, gold, item=None):
            return Verdict(True, self.score, "correct")

    assert build_verifier({"type": "always", "score": 0.5}).verify("x", None).score == 0.5
    with pytest.raises(ValueError, match="unknown verifier type 'nope'"):
        build_verifier({"type": "nope"})
    with pytest.raises(ValueError, match="regex"):
        build_verifier({"type": "regex"})


# -- code -----------------------------------------------------------------------------------

ADD = "```python\ndef add(a, b):\n    return a + b\n```"
ECHO = "```python\nn = int(input())\nprint(sum(map(int, input().split())) * n)\n```"
IO = [{"input": "2\n1 2 3\n", "output": "12\n"}, {"input": "1\n5\n", "output": "5"}]


def code(**kw) -> Verifier:
    return build_verifier(CodeVerifier(type="code", **{"timeout_s": 5, "memory_mb": 256, **kw}))


def test_code_extraction():
    assert extract_code(THINK + "```bash\nls\n```\n```python\nx = 1\n```\n```py\nx = 2\n```") \
        == "x = 2\n"
    assert extract_code("```\ny = 3\n```") == "y = 3\n"
    assert extract_code("<think>```python\nbad\n```</think>print(1)") == "print(1)"


def test_code_asserts_and_stdio():
    tests = "assert add(1, 2) == 3\nassert add(-1, 1) == 0"
    ok = code().verify(THINK + ADD, None, {"tests": tests})
    assert (ok.ok, ok.reason) == (True, "correct") and ok.details["calls"] == 2
    wrong = code().verify(ADD.replace("a + b", "a - b"), None, {"tests": tests})
    assert (wrong.ok, wrong.reason) == (False, "wrong_answer")
    assert code().verify(ECHO, None, {"tests": IO}).ok
    bad = code().verify(ECHO.replace("* n", "+ n"), None, {"tests": IO})
    assert (bad.reason, bad.details["case"]) == ("wrong_answer", 0)
    assert code().verify("```python\ndef f(:\n```", None, {"tests": IO}).reason == "syntax_error"
    crash = code().verify("```python\n1 / 0\n```", None, {"tests": IO})
    assert crash.reason == "runtime_error" and "ZeroDivisionError" in crash.details["stderr"]
    assert code().verify(ADD, None).reason == "no_tests"
    # a reference solution given as gold is not a test: HumanEval+'s canonical_solution
    assert code().verify(ADD.replace("a + b", "a - b"), "    return a + b\n").reason == "no_tests"


def test_code_timeout():
    t0 = time.monotonic()
    v = code(timeout_s=1).verify("```python\nwhile True:\n    pass\n```", None, {"tests": IO})
    assert v.reason == "timeout" and time.monotonic() - t0 < 1 + 2


@pytest.mark.parametrize("bomb", ["x = bytearray(10**10)",
                                  "x = []\nwhile True:\n    x.append(bytearray(10**6))"])
def test_code_memory(bomb):
    v = code(memory_mb=200).verify(f"```python\n{bomb}\n```", None, {"tests": IO})
    assert v.reason == "memory", v.details
    assert bytearray(10**7)  # this process is unaffected


@pytest.fixture
def server():
    srv = socket.create_server(("127.0.0.1", 0))
    yield srv
    srv.close()


def _connected(srv) -> bool:
    return bool(select.select([srv], [], [], 0.2)[0])


def test_network_blocked(server):
    port = server.getsockname()[1]
    v = code().verify(f"```python\nimport socket\nsocket.create_connection(('127.0.0.1', {port}))"
                      "\n```", None, {"tests": IO})
    assert v.reason == "runtime_error" and "OSError" in v.details["stderr"] or \
        "Error" in v.details["stderr"], v.details
    assert v.details["network"] == network_mechanism()
    res = run_python("import socket\ntry:\n    socket.getaddrinfo('localhost', 80)\n"
                     "    print('RESOLVED')\nexcept OSError as e:\n    print('BLOCKED', e)")
    assert res.stdout.startswith("BLOCKED")
    assert not _connected(server)


def test_socket_guard_alone(server):
    """Weak isolation (no bubblewrap, allowed by the recipe): the guard still stops the socket
    API (not a `_socket` bypass; only the strict sandbox stops that)."""
    port = server.getsockname()[1]
    res = run_python("import socket\n"
                     f"for f, a in [(socket.create_connection, (('127.0.0.1', {port}),)),\n"
                     "             (socket.gethostbyname, ('localhost',)), (socket.socket, ())]:\n"
                     "    try:\n        f(*a)\n        print('OPEN')\n"
                     "    except OSError as e:\n        print('BLOCKED', e)\n"
                     "a, b = socket.socketpair()\na.sendall(b'unix ok')\nprint(b.recv(7).decode())",
                     isolation_mode="weak")
    assert res.network.endswith("guard"), res.stderr
    assert res.stdout.splitlines() == ["BLOCKED network disabled"] * 3 + ["unix ok"]
    assert not _connected(server)


def test_sandbox_environment():
    res = run_python("import os, sys\nprint(os.getcwd())\nprint(sorted(os.environ))\n"
                     "open('junk.txt', 'w').write('x')\nprint(os.path.expanduser('~'))")
    cwd, env, home = res.stdout.splitlines()
    assert cwd == home == res.workdir
    assert set(ast.literal_eval(env)) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE", "PWD"}
    assert "/work/main/.venv" not in res.stdout
    assert not list(Path(tempfile.gettempdir()).glob("q3-sandbox-*/work/junk.txt"))


def test_a_corrected_answer_on_one_line_is_the_last():
    """Found by benchmarks/verifier_agreement.py: the first "answer is" swallowed the rest of its line."""
    from qwen3_recipe.verify.answers import choice_letter, phrase_answer
    line = "The answer is (D)... wait, no. The answer is (B)."
    assert phrase_answer(line) == "(B)" and choice_letter(line, "ABCD") == "B"
    assert build_verifier({"type": "exact"}).verify("The answer is 3, no wait, the answer is 4", "4").ok
    assert not build_verifier({"type": "exact"}).verify("The answer is 4, no wait, the answer is 3", "4").ok
