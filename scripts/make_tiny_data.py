#!/usr/bin/env python3
"""Write the small, offline corpora that ``recipes/tiny.yaml`` trains and evaluates on.

Nothing is downloaded; standard library only; every random choice uses a fixed seed, so a
rerun rewrites byte-identical files (for a given CPython; the web and code corpora are read
from the running interpreter's own standard library, so use CPython 3.11).

  datasets_spec/data/tiny_web.jsonl      English prose: stdlib docstrings (ast for .py files,
                                         inspect for C modules) and pydoc's language-reference
                                         topics, cleaned into paragraphs (PSF licence).
  datasets_spec/data/tiny_code.jsonl     Top-level functions and classes from stdlib .py files.
  datasets_spec/data/tiny_math.jsonl     Worked arithmetic, each step written out (<think>...).
  datasets_spec/data/tiny_prompts.jsonl  2,000 arithmetic prompts with answers (synthetic data, RL).
  datasets_spec/data/tiny_chat.jsonl     500 Qwen3-style chats (/think and /no_think) for SFT.
  evals/data/tiny_arith.jsonl            200 held-out items; no (a, op, b) triple in any
                                         training file above (asserted).

Every equation in every worked solution is re-evaluated and asserted before anything is written.
Usage: python3 scripts/make_tiny_data.py [--root REPO_ROOT]
"""
from __future__ import annotations

import argparse, ast, importlib, inspect, json, random, re, sys, sysconfig, textwrap
from pathlib import Path

STDLIB = Path(sysconfig.get_path("stdlib"))
DOCS = "https://docs.python.org/3"
# Pure-Python modules and packages whose docstrings feed the web corpus ("file:docs-page").
PY_MODULES = """__future__ _pydecimal:decimal _pyio:io _collections_abc:collections.abc abc aifc
argparse ast asynchat asyncio asyncore base64 bdb bisect bz2 calendar cgi cgitb chunk cmd code
codecs codeop collections colorsys compileall concurrent configparser contextlib contextvars copy
copyreg csv ctypes curses dataclasses datetime dbm difflib dis distutils doctest email enum filecmp
fileinput fnmatch fractions ftplib functools getopt getpass gettext glob graphlib gzip hashlib heapq
hmac html http idlelib imaplib imghdr imp importlib inspect io ipaddress json keyword lib2to3
linecache locale logging lzma mailbox mailcap mimetypes modulefinder multiprocessing netrc nntplib
numbers opcode operator optparse os pathlib pdb pickle pickletools pipes pkgutil platform plistlib
poplib posixpath pprint profile pstats pty py_compile pyclbr pydoc queue quopri random re reprlib
rlcompleter runpy sched secrets selectors shelve shlex shutil signal site smtpd smtplib sndhdr socket
socketserver sqlite3 ssl stat statistics string stringprep struct subprocess sunau symtable sysconfig
tabnanny tarfile telnetlib tempfile textwrap threading timeit tkinter token tokenize tomllib trace
traceback tracemalloc tty turtle types typing unittest urllib uu uuid venv warnings wave weakref
webbrowser wsgiref xdrlib xml xmlrpc zipapp zipfile zipimport zoneinfo""".split()
# Extension modules, read with inspect (importing them has no side effects).
C_MODULES = """builtins math cmath itertools array binascii select time zlib unicodedata mmap
_socket:socket _io:io _json:json _pickle:pickle _struct:struct _csv:csv _collections:collections
_functools:functools _operator:operator _heapq:heapq _random:random _datetime:datetime
_decimal:decimal _sqlite3:sqlite3 _ssl:ssl _elementtree:xml.etree.elementtree""".split()
CODE_MODULES = """abc argparse ast base64 bisect calendar cmd codecs collections colorsys configparser
contextlib copy csv dataclasses datetime difflib dis email enum filecmp fnmatch fractions ftplib
functools getopt gettext glob graphlib gzip heapq hmac html http imaplib inspect ipaddress json
keyword linecache locale logging mailbox mimetypes netrc numbers operator optparse os pathlib pickle
pkgutil platform plistlib posixpath pprint queue quopri random reprlib sched secrets selectors shlex
shutil smtplib socket socketserver statistics string struct subprocess tarfile tempfile textwrap
threading timeit tokenize tomllib traceback types typing unittest urllib uuid warnings weakref
zipfile""".split()
WEB_BYTES, CODE_BYTES, CODE_PER_MODULE, MATH_BYTES = 1_500_000, 1_000_000, 14_000, 1_500_000
SKIP_DIRS = {"test", "tests", "idle_test"}
SYMBOLS = set("{}[]<>=_|\\#@$%^~*`")


def module_files(name: str) -> list[Path]:
    base = STDLIB / name
    files = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    return [f for f in files if f.exists() and not SKIP_DIRS & set(f.relative_to(STDLIB).parts)]


def parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text("utf-8-sig"))
    except (SyntaxError, UnicodeDecodeError):
        return None


def web_sources():
    """Yield (url, raw docstring) in a fixed order."""
    from pydoc_data.topics import topics
    for key in sorted(topics):
        yield f"{DOCS}/reference/index.html", topics[key]
    for spec in PY_MODULES:
        name, page = (spec.split(":") + [spec])[:2]
        for tree in filter(None, map(parse, module_files(name))):
            nodes = [n for n in ast.walk(tree) if isinstance(
                n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
            for node in sorted(nodes, key=lambda n: getattr(n, "lineno", 0)):
                if doc := ast.get_docstring(node):
                    yield f"{DOCS}/library/{page}.html", doc
    for spec in C_MODULES:
        name, page = (spec.split(":") + [spec])[:2]
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for obj in [mod] + [getattr(mod, a) for a in sorted(dir(mod)) if not a.startswith("_")]:
            members = [obj] + ([v for k, v in sorted(vars(obj).items()) if not k.startswith("_")]
                               if inspect.isclass(obj) else [])
            for m in members:
                if (inspect.ismodule(m) or inspect.isclass(m) or inspect.isroutine(m)) \
                        and isinstance(m.__doc__, str):
                    yield f"{DOCS}/library/{page}.html", inspect.cleandoc(m.__doc__)


def prose_paragraphs(doc: str):
    """Split a docstring into paragraphs and keep those that read as natural English."""
    for para in re.split(r"\n\s*\n", doc.strip()):
        lines = para.splitlines()
        if any(not line.strip() or line[0].isspace() for line in lines):
            continue  # indented code, parameter tables, grammar rules
        t = " ".join(" ".join(lines).split())
        t = re.sub(r":[\w:]+:`[~!]?([^`<]*?)(?: <[^>]*>)?`", r"\1", t)  # :func:`x` -> x
        t = re.sub(r"`+([^`]+)`+_?", r"\1", t)
        t = re.sub(r"\*\*?(\w[^*]*?)\*\*?", r"\1", t)
        t = re.sub(r" ?\[\d+\]", "", t)  # footnote marks
        words = t.split()
        if (len(words) >= 6 and t[0].isupper() and t[-1] in ".!?" and ">>>" not in t
                and max(map(len, words)) <= 25 and sum(c in SYMBOLS for c in t) * 150 <= len(t)
                and sum(any(c.isalpha() for c in w) for w in words) >= 0.9 * len(words)):
            yield t


def make_web(rng: random.Random) -> list[dict]:
    docs, seen, cur, cur_url, size = [], set(), [], None, 0

    def flush():
        nonlocal size
        text = "\n\n".join(cur)
        if 300 <= len(text) <= 3000 and len(text.split()) >= 50 and size < WEB_BYTES:
            docs.append({"id": f"web-{len(docs) + 1:06d}", "text": text, "url": cur_url})
            size += len(text.encode())

    target = rng.randint(600, 2400)
    for url, raw in web_sources():
        for p in prose_paragraphs(raw):
            if p in seen or len(p) > 3000:
                continue
            seen.add(p)
            if url != cur_url or sum(len(x) + 2 for x in cur) + len(p) > target:
                flush()
                cur, cur_url, target = [], url, rng.randint(600, 2400)
            cur.append(p)
    flush()
    return docs


def code_units(tree: ast.Module, lines: list[str]):
    def source(n):
        start = n.decorator_list[0].lineno if n.decorator_list else n.lineno
        return textwrap.dedent("\n".join(lines[start - 1:n.end_lineno]))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in (n for n in tree.body if isinstance(n, defs)):
        text = source(node)
        if len(text) > 4000 and isinstance(node, ast.ClassDef):  # big class: its methods
            yield from (source(m) for m in node.body if isinstance(m, defs))
        else:
            yield text


def make_code() -> list[dict]:
    docs, size = [], 0
    for name in CODE_MODULES:
        taken = 0
        for f in module_files(name):
            if (tree := parse(f)) is None or size >= CODE_BYTES:
                continue
            for text in code_units(tree, f.read_text("utf-8-sig").splitlines()):
                if 200 <= len(text) <= 4000 and taken < CODE_PER_MODULE and size < CODE_BYTES:
                    path = f"Lib/{f.relative_to(STDLIB).as_posix()}"
                    docs.append({"id": f"code-{len(docs) + 1:06d}", "text": text,
                                 "repo": "cpython", "path": path})
                    taken, size = taken + len(text), size + len(text.encode())
    return docs


# ---------------------------------------------------------------- arithmetic
def digits(n: int) -> list[int]:
    return [int(c) for c in str(n)[::-1]]  # ones first


def add_steps(a: int, b: int) -> list[str]:
    if a < 10 and b < 10:
        return [f"{a} + {b} = {a + b}."]
    da, db, carry, out = digits(a), digits(b), 0, []
    n = max(len(da), len(db))
    for i in range(n):
        terms = da[i:i + 1] + db[i:i + 1] + ([carry] if carry else [])
        s, expr = sum(terms), " + ".join(map(str, terms))
        if len(terms) == 1:
            out.append(f"Bring down {s}.")
        elif i == n - 1 or s < 10:
            out.append(f"{expr} = {s}.")
        else:
            out.append(f"{expr} = {s}, write {s % 10} carry {s // 10}.")
        carry = s // 10
    return out + [f"So {a} + {b} = {a + b}."]


def sub_steps(a: int, b: int) -> list[str]:
    if a < 10:
        return [f"{a} - {b} = {a - b}."]
    db, borrow, out = digits(b), 0, []
    for i, x in enumerate(digits(a)):
        rest = ([borrow] if borrow else []) + db[i:i + 1]
        v, expr = x - sum(rest), " - ".join(map(str, rest))
        if not rest:
            out.append(f"Bring down {x}.")
        elif v < 0:
            out.append(f"{x} - {expr} is negative, borrow 1: {x + 10} - {expr} = {v + 10}.")
        else:
            out.append(f"{x} - {expr} = {v}.")
        borrow = int(v < 0)
    return out + [f"So {a} - {b} = {a - b}."]


def mul_steps(a: int, b: int) -> list[str]:
    if a < 10 <= b:
        return [f"{a} × {b} = {b} × {a}."] + mul_steps(b, a)
    if b < 10:
        if a < 10:
            return [f"{a} × {b} = {a * b}."]
        da, carry, out = digits(a), 0, []
        for i, x in enumerate(da):
            v, expr = x * b + carry, f"{x} × {b}" + (f" + {carry}" if carry else "")
            out.append(f"{expr} = {v}." if i == len(da) - 1 or v < 10
                       else f"{expr} = {v}, write {v % 10} carry {v // 10}.")
            carry = v // 10
        return out + [f"So {a} × {b} = {a * b}."]
    t, u = divmod(b, 10)  # b has two digits: a × b = a × u + a × (10t)
    out = [f"{a} × {b} = {a} × {u} + {a} × {10 * t}." if u else f"{a} × {b} = {a} × {t} × 10."]
    out += (mul_steps(a, u) if u else []) + mul_steps(a, t) + [f"{a} × {10 * t} = {a * t * 10}."]
    return out + (add_steps(a * u, a * t * 10) if u else []) + [f"So {a} × {b} = {a * b}."]


STEPS = {"+": add_steps, "-": sub_steps, "×": mul_steps}
APPLY = {"+": int.__add__, "-": int.__sub__, "×": int.__mul__}
Q1 = {"+": ["What is {a} + {b}?"] * 5 + ["Compute {a} + {b}.", "What is the sum of {a} and {b}?",
                                         "Add {a} and {b}."],
      "-": ["What is {a} - {b}?"] * 5 + ["Compute {a} - {b}.", "What is {a} minus {b}?",
                                         "Subtract {b} from {a}."],
      "×": ["What is {a} × {b}?"] * 5 + ["Compute {a} × {b}.", "What is {a} times {b}?",
                                         "What is the product of {a} and {b}?"]}
# Word problems: (template, starting variable, [(op, variable)], ranges of a, b, c).
WORD = [("{n} has {a} {i}. {p} gets {b} more. How many {i} does {n} have now?",
         "a", [("+", "b")], (10, 999), (10, 999), (0, 0)),
        ("{n} had {a} {i} and gave away {b}. How many {i} are left?",
         "a", [("-", "b")], (20, 999), (10, 999), (0, 0)),
        ("A box holds {a} {i}. How many {i} are in {b} boxes?",
         "a", [("×", "b")], (10, 99), (2, 9), (0, 0)),
        ("{n} has {a} {i} and buys {b} packs with {c} {i} in each pack. How many {i} does {n} have now?",
         "b", [("×", "c"), ("+", "a")], (10, 200), (2, 9), (10, 60)),
        ("A shop had {a} {i}. It sold {b} in the morning and {c} in the afternoon. How many {i} are left?",
         "a", [("-", "b"), ("-", "c")], (100, 999), (10, 400), (10, 400)),
        ("There are {a} rows of {b} chairs. {c} chairs are taken. How many chairs are free?",
         "a", [("×", "b"), ("-", "c")], (10, 40), (3, 9), (5, 99)),
        ("{n} collects {a} {i} on Monday and {b} on Tuesday, then gives {c} away. How many {i} are left?",
         "a", [("+", "b"), ("-", "c")], (10, 500), (10, 500), (10, 500))]
NAMES = [("Ana", "She"), ("Ben", "He"), ("Maya", "She"), ("Omar", "He"), ("Lily", "She"), ("Sam", "He")]
ITEMS = "apples marbles stickers books pencils cards coins shells".split()
ANSWERS = ["The answer is \\boxed{%d}."] * 3 + ["So the answer is \\boxed{%d}.", "Final answer: \\boxed{%d}."]


def key(a: int, op: str, b: int) -> tuple:
    return (min(a, b), op, max(a, b)) if op in "+×" else (a, op, b)


def solve(x: int, ops: list[tuple[str, int]]) -> tuple[list[str], int, list[tuple]]:
    lines, triples = [], []
    for j, (op, y) in enumerate(ops):
        if len(ops) > 1:
            lines.append(f"{'Then' if j else 'First'} compute {x} {op} {y}.")
        lines += STEPS[op](x, y)
        triples.append(key(x, op, y))
        x = APPLY[op](x, y)
    return lines, x, triples


def number(rng: random.Random, nd: int) -> int:
    return rng.randint(10 ** (nd - 1) if nd > 1 else 1, 10 ** nd - 1)


def make_problem(rng: random.Random, hard: bool) -> tuple[str, list[str], int, list[tuple]]:
    """One problem: (question, reasoning lines, answer, question-level (a, op, b) triples)."""
    kind = rng.choices("+-×2w", [2, 2, 3, 3, 2] if hard else [5, 4, 4, 2, 3])[0]
    nd = lambda: 3 if hard else rng.choice([1, 2, 2, 3, 3])
    if kind in "+-":
        a, b = sorted((number(rng, nd()), number(rng, nd())), reverse=kind == "-")
        if kind == "+" and rng.random() < 0.5:
            a, b = b, a
    elif kind == "×":
        a, b = ((number(rng, 2), number(rng, 2)) if rng.random() < (0.5 if hard else 0.2)
                else (number(rng, 3 if hard else rng.choice([1, 2, 2, 3])), number(rng, 1)))
    if kind in "+-×":
        return (rng.choice(Q1[kind]).format(a=a, b=b),) + solve(a, [(kind, b)])
    if kind == "2":
        o1, o2 = rng.choice([("+", "-"), ("-", "+"), ("×", "+"), ("×", "-"), ("+", "+")])
        a, b, c = number(rng, 2 if o1 == "×" else nd()), number(rng, 1 if o1 == "×" else nd()), 0
        a, b = (max(a, b), min(a, b)) if o1 == "-" else (a, b)
        while c == 0 or (o2 == "-" and c > APPLY[o1](a, b)):
            c = number(rng, nd())
        return (f"What is {a} {o1} {b} {o2} {c}?",) + solve(a, [(o1, b), (o2, c)])
    text, start, ops, *ranges = rng.choice(WORD)
    while True:
        v = dict(zip("abc", (rng.randint(*r) for r in ranges)))
        lines, ans, triples = solve(v[start], [(op, v[k]) for op, k in ops])
        if ans >= 0 and all(t[0] >= 0 for t in triples):
            break
    n, p = rng.choice(NAMES)
    return (text.format(n=n, p=p, i=rng.choice(ITEMS), **v), lines, ans, triples)


EQUATION = re.compile(r"\d+(?: *[-+×] *\d+)*(?: *= *\d+(?: *[-+×] *\d+)*)+")


def check(lines: list[str], answer: int, triples: list[tuple]) -> None:
    """Assert every equation, carry and borrow in a worked solution."""
    for line in lines:
        for m in EQUATION.finditer(line):
            values = {eval(side.replace("×", "*"), {"__builtins__": {}}) for side in m[0].split("=")}
            assert len(values) == 1, line
        for n, w, c in re.findall(r"= (\d+), write (\d) carry (\d)", line):
            assert int(n) == 10 * int(c) + int(w), line
        for x, rest, big in re.findall(r"^(\d) - ([\d -]+?) is negative, borrow 1: (\d+) - ", line):
            assert int(x) - sum(map(int, rest.split(" - "))) < 0 and int(big) == int(x) + 10, line
    assert lines[-1].endswith(f"= {answer}."), lines
    assert all(t[2] >= 0 for t in triples) and answer >= 0


def train_problem(rng, banned, used):
    while True:
        q, lines, ans, triples = make_problem(rng, hard=rng.random() < 0.3)
        if not banned.intersection(triples):
            check(lines, ans, triples)
            used.update(triples)
            if rng.random() < 0.3:
                lines[-1] = re.sub(r"^So ", rng.choice(["Therefore ", "Thus "]), lines[-1])
            return q, lines, ans


def make_math(rng, banned, used, prompts_rng, chat_rng):
    evals = []
    math, size = [], 0
    while size < MATH_BYTES:
        parts = []
        for _ in range(rng.randint(3, 6)):
            q, lines, ans = train_problem(rng, banned, used)
            body = "\n".join(lines)
            parts.append(f"Question: {q}\n<think>\n{body}\n</think>\n{rng.choice(ANSWERS) % ans}")
        text = "\n\n".join(parts)
        math.append({"id": f"math-{len(math) + 1:06d}", "text": text})
        size += len(text.encode())
    prompts, seen = [], set()
    while len(prompts) < 2000:
        q, _, ans = train_problem(prompts_rng, banned, used)
        if q not in seen:
            seen.add(q)
            prompts.append({"id": f"prompt-{len(prompts) + 1:04d}", "prompt": q,
                            "answer": str(ans), "source": "tiny_arith_train"})
    chats = []
    for i in range(500):
        think, messages = chat_rng.random() < 0.5, []
        q, lines, ans = train_problem(chat_rng, banned, used)
        for turn in range(2 if chat_rng.random() < 0.3 else 1):
            if turn:  # follow-up on the previous answer, or a fresh question
                op, c = chat_rng.choice([("+", number(chat_rng, 2)), ("×", number(chat_rng, 1)),
                                         ("-", chat_rng.randint(0, ans))])
                if chat_rng.random() < 0.5 and key(ans, op, c) not in banned and (op != "×" or ans < 1000):
                    q = {"+": f"Now add {c} to that.", "×": f"Now multiply that by {c}.",
                         "-": f"Now subtract {c} from that."}[op]
                    lines, ans, triples = solve(ans, [(op, c)])
                    check(lines, ans, triples)
                    used.update(triples)
                else:
                    q, lines, ans = train_problem(chat_rng, banned, used)
            messages.append({"role": "user", "content": f"{q} {'/think' if think else '/no_think'}"})
            reply = {"role": "assistant", "content": "The answer is \\boxed{%d}." % ans}
            if think:
                reply["reasoning_content"] = "\n".join(lines)
            messages.append(reply)
        chats.append({"id": f"chat-{i + 1:04d}", "messages": messages})
    return math, prompts, chats


def make_eval(rng: random.Random) -> tuple[list[dict], set]:
    items, banned, seen = [], set(), set()
    while len(items) < 200:
        q, lines, ans, triples = make_problem(rng, hard=len(items) >= 100)
        if q in seen or any(max(t[0], t[2]) < 10 for t in triples) or banned.intersection(triples):
            continue
        check(lines, ans, triples)
        seen.add(q)
        banned.update(triples)
        items.append({"id": f"tiny_arith-{len(items):03d}", "question": q, "answer": str(ans)})
    return items, banned


def write_jsonl(path: Path, rows: list[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    path.write_bytes(data)
    return len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    root = ap.parse_args().root
    if sys.version_info[:2] != (3, 11):
        print(f"warning: web/code corpora are read from Python {sys.version.split()[0]}'s stdlib; "
              "CPython 3.11 reproduces the shipped files", file=sys.stderr)
    evals, banned = make_eval(random.Random(1234))
    used: set = set()
    math, prompts, chats = make_math(random.Random(1), banned, used, random.Random(2), random.Random(3))
    assert used.isdisjoint(banned), "eval triples leaked into training data"
    data = root / "datasets_spec" / "data"
    outputs = {data / "tiny_web.jsonl": make_web(random.Random(0)),
               data / "tiny_code.jsonl": make_code(),
               data / "tiny_math.jsonl": math, data / "tiny_prompts.jsonl": prompts,
               data / "tiny_chat.jsonl": chats, root / "evals" / "data" / "tiny_arith.jsonl": evals}
    total = 0
    print(f"{'file':<40} {'docs':>6} {'bytes':>10}")
    for path, rows in outputs.items():
        nbytes = write_jsonl(path, rows)
        total += nbytes
        print(f"{path.relative_to(root).as_posix():<40} {len(rows):>6} {nbytes:>10,}")
    print(f"{'total':<40} {sum(map(len, outputs.values())):>6} {total:>10,}")


if __name__ == "__main__":
    main()
