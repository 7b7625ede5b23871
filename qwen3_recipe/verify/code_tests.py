"""A code item's tests in the benchmark's own convention, judged by the harness.

An item (catalog/items.py builds them from benchmark rows) carries `tests` and `test_format`:
- `humaneval` (HumanEval, HumanEval+ / EvalPlus): `tests` defines `check(candidate)`, called on
  the `entry_point` function; a completion without the `def` is appended to the prompt;
- `script` (MBPP+, plain asserts): a script calling the program's functions by name;
- `livecodebench`: a list of `{input, output, testtype}` cases (`stdin`, or `functional` with
  `fn_name`), or the dataset's encodings of one (JSON text; base64 of zlib of a pickled JSON
  string for private cases, unpickled here with every class refused);
- `stdio`: a list of `{input, output}` pairs.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zlib
from typing import get_args

from qwen3_recipe.catalog.specs import TestFormat
from qwen3_recipe.verify import harness

# What LiveCodeBench puts above every program before running it (lcb_runner's import header).
LCB_HEADER = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\nimport string\nimport re\nimport datetime\n"
    "import collections\nimport heapq\nimport bisect\nimport copy\nimport math\nimport random\n"
    "import statistics\nimport itertools\nimport functools\nimport operator\nimport io\nimport sys\n"
    "import json\nsys.setrecursionlimit(50000)\n")
FORMATS = get_args(TestFormat)


class _StrOnly(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a test-case blob")


def decode_cases(value) -> list[dict]:
    """LiveCodeBench test cases from a list, JSON text, or base64(zlib(pickle(JSON text)));
    ValueError when it is none of them."""
    if isinstance(value, list):
        return value
    text = str(value).strip()
    try:
        if text.startswith("["):
            return json.loads(text)
        raw = zlib.decompress(base64.b64decode(text.encode("utf-8"), validate=True))
        inner = _StrOnly(io.BytesIO(raw)).load()
        cases = json.loads(inner) if isinstance(inner, (str, bytes)) else inner
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"test cases are neither JSON nor base64(zlib(pickle(JSON))): {e}") from None
    if not isinstance(cases, list):
        raise ValueError("test cases must be a list")
    return cases


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def humaneval_program(code: str, prompt: str | None, entry_point: str) -> str:
    """The program to test: the prompt, then the model's code. A completion of the body continues
    the prompt's signature; a whole function redefines the prompt's stub, and the prompt's imports
    and helper functions (HumanEval/10's is_palindrome, /38's encode_cyclic) stay defined."""
    if not prompt:
        return code
    return prompt + code if not _defines(code, entry_point) else f"{prompt}\n\n{code}"


def run_tests(code: str, item: dict, timeout_s: float, memory_mb: int) -> harness.Outcome | None:
    """The harness's outcome for `code` on the item's tests; None when the item has none."""
    tests, fmt = item.get("tests"), item.get("test_format")
    if tests is None or tests == "" or tests == []:
        return None
    if fmt is None:
        fmt = "script" if isinstance(tests, str) else "stdio"
    if fmt not in FORMATS:
        raise ValueError(f"unknown test_format {fmt!r} (known: {', '.join(FORMATS)})")
    kw = {"timeout_s": timeout_s, "memory_mb": memory_mb}
    if fmt == "humaneval":
        entry = item["entry_point"]
        return harness.run_script(humaneval_program(code, item.get("starter_code"), entry), tests,
                                  ("check", entry), **kw)
    if fmt == "script":
        setup = "\n".join(item.get("test_imports") or [])
        return harness.run_script(code, f"{setup}\n{tests}" if setup else tests, **kw)
    cases = decode_cases(tests) if fmt == "livecodebench" else tests
    if fmt == "livecodebench":
        code = LCB_HEADER + code
    if fmt == "livecodebench" and any(c.get("testtype") == "functional" for c in cases):
        fn = item.get("fn_name")
        if not fn:
            raise ValueError("functional test cases need the item's `fn_name`")
        target = f"Solution.{fn}" if re.search(r"^class\s+Solution\b", code, re.MULTILINE) else fn
        parsed = [([json.loads(a) for a in str(c["input"]).split("\n") if a.strip()], json.loads(c["output"]))
                  for c in cases]
        return harness.run_functional(code, target, parsed, **kw)
    return harness.run_stdio(code, [(str(c.get("input", "")), str(c.get("output", ""))) for c in cases], **kw)
