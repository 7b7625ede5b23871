#!/usr/bin/env python3
"""Write the small offline corpora behind ``recipes/tiny.yaml``: stdlib only, no network.

Fixed seeds make reruns byte-identical.  Web prose (docstrings read with ast/inspect, plus pydoc's
language-reference topics; PSF licence) and code come from the running interpreter's own stdlib,
so run it with CPython 3.11 to reproduce the shipped files.  Outputs, JSON Lines in UTF-8:

  datasets_spec/data/tiny_web.jsonl      English prose paragraphs, 300-3000 characters a document
  datasets_spec/data/tiny_code.jsonl     top-level stdlib functions and classes
  datasets_spec/data/tiny_math.jsonl     arithmetic worked step by step inside <think>...</think>
  datasets_spec/data/tiny_prompts.jsonl  2,000 prompts with answers (synthetic reasoning data, RL)
  datasets_spec/data/tiny_chat.jsonl     500 Qwen3 chats for SFT, /think and /no_think
  evals/data/tiny_arith.jsonl            200 held-out items whose (a, op, b) triples occur in no
                                         training file (asserted)

Every equation, carry and borrow of every worked solution is checked before anything is written.
Usage: python3 scripts/make_tiny_data.py [--root REPO_ROOT]
"""
from __future__ import annotations

import argparse, ast, importlib, inspect, json, random, re, sys, sysconfig, textwrap
from pathlib import Path

STDLIB, DOCS = Path(sysconfig.get_path("stdlib")), "https://docs.python.org/3"
# Pure-Python modules and packages read with ast (never imported); "file:page" names the docs page.
PY_MODULES = """__future__ _pydecimal:decimal _pyio:io _collections_abc:collections.abc abc aifc argparse
ast asynchat asyncio asyncore base64 bdb bisect bz2 calendar cgi cgitb chunk cmd code codecs codeop
collections colorsys compileall concurrent configparser contextlib contextvars copy copyreg csv ctypes
curses dataclasses datetime dbm difflib dis distutils doctest email enum filecmp fileinput fnmatch
fractions ftplib functools getopt getpass gettext glob graphlib gzip hashlib heapq hmac html http
idlelib imaplib imghdr imp importlib inspect io ipaddress json keyword lib2to3 linecache locale logging
lzma mailbox mailcap mimetypes modulefinder multiprocessing netrc nntplib numbers opcode operator
optparse os pathlib pdb pickle pickletools pipes pkgutil platform plistlib poplib posixpath pprint
profile pstats pty py_compile pyclbr pydoc queue quopri random re reprlib rlcompleter runpy sched
secrets selectors shelve shlex shutil signal site smtpd smtplib sndhdr socket socketserver sqlite3 ssl
stat statistics string stringprep struct subprocess sunau symtable sysconfig tabnanny tarfile telnetlib
tempfile textwrap threading timeit tkinter token tokenize tomllib trace traceback tracemalloc tty turtle
types typing unittest urllib uu uuid venv warnings wave weakref webbrowser wsgiref xdrlib xml xmlrpc
zipapp zipfile zipimport zoneinfo""".split()
# Extension modules, read with inspect (importing them has no side effects).
C_MODULES = """builtins math cmath itertools array binascii select time zlib unicodedata mmap _socket:socket
_io:io _json:json _pickle:pickle _struct:struct _csv:csv _collections:collections _functools:functools
_operator:operator _heapq:heapq _random:random _datetime:datetime _decimal:decimal _sqlite3:sqlite3
_ssl:ssl _elementtree:xml.etree.elementtree""".split()
CODE_MODULES = [m for m in PY_MODULES if m[0] != "_"]
WEB_BYTES, CODE_BYTES, CODE_PER_MODULE, MATH_BYTES = 1_500_000, 1_000_000, 7_000, 1_500_000
SYMBOLS = set("{}[]<>=_|\\#@$%^~*`")


# ------------------------------------------------------------------------- web and code
def stdlib_trees(name: str):
    """Yield (path, source lines, ast) for a stdlib module or package, tests excluded."""
    base = STDLIB / name
    for f in sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]:
        if f.exists() and not {"test", "tests", "idle_test"} & set(f.relative_to(STDLIB).parts):
            try:
                src = f.read_text("utf-8-sig")
                yield f, src.splitlines(), ast.parse(src)
            except (SyntaxError, UnicodeDecodeError):
                pass

def web_sources():
    """Yield (url, docstring) in a fixed order: reference topics, .py modules, C modules."""
    from pydoc_data.topics import topics
    yield from ((f"{DOCS}/reference/index.html", topics[k]) for k in sorted(topics))
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for name, page in ((s.split(":") + [s])[:2] for s in PY_MODULES):
        for _, _, tree in stdlib_trees(name):
            nodes = sorted((n for n in ast.walk(tree) if isinstance(n, kinds)),
                           key=lambda n: getattr(n, "lineno", 0))
            yield from ((f"{DOCS}/library/{page}.html", d) for n in nodes if (d := ast.get_docstring(n)))
    for name, page in ((s.split(":") + [s])[:2] for s in C_MODULES):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for obj in [mod] + [getattr(mod, a) for a in sorted(dir(mod)) if not a.startswith("_")]:
            extra = sorted(vars(obj).items()) if inspect.isclass(obj) else []
            for m in [obj] + [v for k, v in extra if not k.startswith("_")]:
                if (inspect.ismodule(m) or inspect.isclass(m) or inspect.isroutine(m)) \
                        and isinstance(m.__doc__, str):
                    yield f"{DOCS}/library/{page}.html", inspect.cleandoc(m.__doc__)

def prose_paragraphs(doc: str):
    """Split a docstring into paragraphs; yield those that read as natural English."""
    for para in re.split(r"\n\s*\n", doc.strip()):
        lines = para.splitlines()
        if re.match(r"[*-] \w", lines[0]):  # a bullet item: drop the marker, join its lines
            lines = [lines[0][2:]] + [line.strip() for line in lines[1:]]
        if any(not line.strip() or line[0].isspace() for line in lines):
            continue  # indented code, parameter tables, grammar rules
        t = " ".join(" ".join(lines).split())
        t = re.sub(r":[\w:]+:`[~!]?([^`<]*?)(?: <[^>]*>)?`", r"\1", t)  # :func:`x` -> x
        t = re.sub(r"`([^`']{1,40})'", r"'\1'", t)  # old-style `quote'
        t = re.sub(r"\*\*?(\w[^*]*?)\*\*?", r"\1", re.sub(r"`+([^`]+)`+_?", r"\1", t))
        t = re.sub(r":+$", ".", re.sub(r" ?\[\d+\]", "", t)).replace("`", "")  # footnotes; "as follows:"
        words = t.split()
        if (len(words) >= 6 and (t[0].isalpha() or t[0] in "\"'") and re.search(r"[.!?][)\"']?$", t)
                and ">>>" not in t and max(map(len, words)) <= 25 and sum(c in SYMBOLS for c in t) * 60 <= len(t)
                and sum(any(c.isalpha() for c in w) for w in words) >= 0.9 * len(words)):
            yield t

def make_web(rng: random.Random) -> list[dict]:
    """Pack unseen paragraphs of one docs page into documents of a random target length."""
    docs, seen, cur, cur_url, target = [], set(), [], None, 0

    def flush():
        text = "\n\n".join(cur)
        if 300 <= len(text) <= 3000 and len(text.split()) >= 50 and sum(len(d["text"]) for d in docs) < WEB_BYTES:
            docs.append({"id": f"web-{len(docs) + 1:06d}", "text": text, "url": cur_url})
    for url, raw in web_sources():
        for p in prose_paragraphs(raw):
            if p not in seen and len(p) <= 3000:
                seen.add(p)
                if url != cur_url or sum(len(x) + 2 for x in cur) + len(p) > target:
                    flush()
                    cur, cur_url, target = [], url, rng.randint(600, 2400)
                cur.append(p)
    flush()
    return docs

def make_code() -> list[dict]:
    """Top-level functions and classes (the methods of classes over 4,000 characters)."""
    docs, size, defs = [], 0, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for name in CODE_MODULES:
        taken = 0
        for f, lines, tree in stdlib_trees(name):
            def source(n):
                start = n.decorator_list[0].lineno if n.decorator_list else n.lineno
                return textwrap.dedent("\n".join(lines[start - 1:n.end_lineno]))
            for node in (n for n in tree.body if isinstance(n, defs)):
                big = isinstance(node, ast.ClassDef) and len(source(node)) > 4000
                for text in [source(m) for m in node.body if isinstance(m, defs)] if big else [source(node)]:
                    if 200 <= len(text) <= 4000 and taken < CODE_PER_MODULE and size < CODE_BYTES:
                        docs.append({"id": f"code-{len(docs) + 1:06d}", "text": text, "repo": "cpython",
                                     "path": f"Lib/{f.relative_to(STDLIB).as_posix()}"})
                        taken, size = taken + len(text), size + len(text.encode())
    return docs


# ------------------------------------------------------------------------- arithmetic
def digits(n: int) -> list[int]:
    return [int(c) for c in str(n)[::-1]]  # ones digit first

def add_steps(a: int, b: int) -> list[str]:
    if a < 10 and b < 10:
        return [f"{a} + {b} = {a + b}."]
    da, db, carry, out = digits(a), digits(b), 0, []
    for i in range(n := max(len(da), len(db))):
        terms = da[i:i + 1] + db[i:i + 1] + ([carry] if carry else [])
        s, expr = sum(terms), " + ".join(map(str, terms))
        out.append(f"Bring down {s}." if len(terms) == 1 else f"{expr} = {s}." if i == n - 1 or s < 10
                   else f"{expr} = {s}, write {s % 10} carry {s // 10}.")
        carry = s // 10
    return out + [f"So {a} + {b} = {a + b}."]

def sub_steps(a: int, b: int) -> list[str]:  # requires a >= b
    if a < 10:
        return [f"{a} - {b} = {a - b}."]
    db, borrow, out = digits(b), 0, []
    for i, x in enumerate(digits(a)):
        rest = ([borrow] if borrow else []) + db[i:i + 1]
        v, expr = x - sum(rest), " - ".join(map(str, rest))
        out.append(f"Bring down {x}." if not rest else f"{x} - {expr} = {v}." if v >= 0
                   else f"{x} - {expr} is negative, borrow 1: {x + 10} - {expr} = {v + 10}.")
        borrow = int(v < 0)
    return out + [f"So {a} - {b} = {a - b}."]

def mul_steps(a: int, b: int) -> list[str]:  # b has at most two digits
    if a < 10 <= b:
        return [f"{a} × {b} = {b} × {a}."] + mul_steps(b, a)
    if a < 10:
        return [f"{a} × {b} = {a * b}."]
    if b < 10:
        da, carry, out = digits(a), 0, []
        for i, x in enumerate(da):
            v, expr = x * b + carry, f"{x} × {b}" + (f" + {carry}" if carry else "")
            out.append(f"{expr} = {v}." if i == len(da) - 1 or v < 10
                       else f"{expr} = {v}, write {v % 10} carry {v // 10}.")
            carry = v // 10
        return out + [f"So {a} × {b} = {a * b}."]
    t, u = divmod(b, 10)  # a × b = a × u + a × 10t
    out = [f"{a} × {b} = {a} × {u} + {a} × {10 * t}." if u else f"{a} × {b} = {a} × {t} × 10."]
    out += (mul_steps(a, u) if u else []) + mul_steps(a, t) + [f"{a} × {10 * t} = {a * t * 10}."]
    return out + (add_steps(a * u, a * t * 10) if u else []) + [f"So {a} × {b} = {a * b}."]

STEPS = {"+": add_steps, "-": sub_steps, "×": mul_steps}
APPLY = {"+": int.__add__, "-": int.__sub__, "×": int.__mul__}
VERBS = {"+": ("the sum of", "plus"), "-": ("the difference of", "minus"), "×": ("the product of", "times")}
Q1 = {op: [f"What is {{a}} {op} {{b}}?"] * 5 + [f"Compute {{a}} {op} {{b}}.", f"What is {w} {{a}} and {{b}}?",
                                              f"What is {{a}} {v} {{b}}?"] for op, (w, v) in VERBS.items()}
# Word problems: template, start variable, [(op, variable)], ranges for a, b, c.
WORD = [("{n} has {a} {i}. {p} gets {b} more. How many {i} does {n} have now?", "a", [("+", "b")],
         (10, 999), (10, 999), (0, 0)),
        ("{n} had {a} {i} and gave away {b}. How many {i} are left?", "a", [("-", "b")],
         (20, 999), (10, 999), (0, 0)),
        ("A box holds {a} {i}. How many {i} are in {b} boxes?", "a", [("×", "b")], (10, 99), (2, 9), (0, 0)),
        ("{n} has {a} {i} and buys {b} packs of {c} {i}. How many {i} does {n} have now?", "b",
         [("×", "c"), ("+", "a")], (10, 200), (2, 9), (10, 60)),
        ("A shop had {a} {i}. It sold {b} in the morning and {c} in the afternoon. How many {i} are left?",
         "a", [("-", "b"), ("-", "c")], (100, 999), (10, 400), (10, 400)),
        ("There are {a} rows of {b} chairs and {c} chairs are taken. How many chairs are free?", "a",
         [("×", "b"), ("-", "c")], (10, 40), (3, 9), (5, 99))]
NAMES = [("Ana", "She"), ("Ben", "He"), ("Maya", "She"), ("Omar", "He"), ("Lily", "She"), ("Sam", "He")]
ITEMS = "apples marbles stickers books pencils cards coins shells".split()
ANSWERS = ["The answer is \\boxed{%d}."] * 3 + ["So the answer is \\boxed{%d}.", "Final answer: \\boxed{%d}."]
EQUATION = re.compile(r"\d+(?: *[-+×] *\d+)*(?: *= *\d+(?: *[-+×] *\d+)*)+")

def key(a: int, op: str, b: int) -> tuple:
    return (min(a, b), op, max(a, b)) if op in "+×" else (a, op, b)

def solve(x: int, ops: list[tuple[str, int]]) -> tuple[list[str], int, list[tuple]]:
    """Reasoning lines, result and (a, op, b) triples for x op1 y1 op2 y2 ..., left to right."""
    lines, triples = [], []
    for j, (op, y) in enumerate(ops):
        lines += ([f"{'Then' if j else 'First'} compute {x} {op} {y}."] if len(ops) > 1 else []) + STEPS[op](x, y)
        triples.append(key(x, op, y))
        x = APPLY[op](x, y)
    return lines, x, triples

def number(rng: random.Random, nd: int) -> int:
    return rng.randint(10 ** (nd - 1) if nd > 1 else 1, 10 ** nd - 1)

def make_problem(rng: random.Random, hard: bool) -> tuple[str, list[str], int, list[tuple]]:
    """One problem: question, reasoning lines, answer, question-level triples."""
    kind = rng.choices("+-×2w", [2, 2, 3, 3, 2] if hard else [5, 4, 4, 2, 3])[0]
    nd = lambda: 3 if hard else rng.choice([1, 2, 2, 3, 3])
    if kind in "+-":
        a, b = sorted((number(rng, nd()), number(rng, nd())), reverse=kind == "-" or rng.random() < 0.5)
    elif kind == "×":
        a, b = ((number(rng, 2), number(rng, 2)) if rng.random() < (0.5 if hard else 0.2)
                else (number(rng, 3 if hard else rng.choice([1, 2, 2, 3])), number(rng, 1)))
    if kind in "+-×":
        return (rng.choice(Q1[kind]).format(a=a, b=b),) + solve(a, [(kind, b)])
    if kind == "2":
        o1, o2 = rng.choice([("+", "-"), ("-", "+"), ("×", "+"), ("×", "-"), ("+", "+")])
        while True:
            a, b = number(rng, 2 if o1 == "×" else nd()), number(rng, 1 if o1 == "×" else nd())
            a, b, c = *((max(a, b), min(a, b)) if o1 == "-" else (a, b)), number(rng, nd())
            if o2 == "+" or c <= APPLY[o1](a, b):
                return (f"What is {a} {o1} {b} {o2} {c}?",) + solve(a, [(o1, b), (o2, c)])
    text, start, ops, *ranges = rng.choice(WORD)
    while True:
        v = dict(zip("abc", (rng.randint(*r) for r in ranges)))
        x = v[start]
        if all((x := APPLY[op](x, v[k])) >= 0 for op, k in ops):
            (n, p), item = rng.choice(NAMES), rng.choice(ITEMS)
            return (text.format(n=n, p=p, i=item, **v),) + solve(v[start], [(op, v[k]) for op, k in ops])

def check(lines: list[str], answer: int) -> None:
    """Assert every equation, carry and borrow in a worked solution, and its final result."""
    for line in lines:
        for m in EQUATION.finditer(line):
            assert len({eval(s.replace("×", "*"), {"__builtins__": {}}) for s in m[0].split("=")}) == 1, line
        for n, w, c in re.findall(r"= (\d+), write (\d) carry (\d)", line):
            assert int(n) == 10 * int(c) + int(w), line
        for x, rest, big in re.findall(r"^(\d) - ([\d -]+?) is negative, borrow 1: (\d+) - ", line):
            assert int(x) < sum(map(int, rest.split(" - "))) and int(big) == int(x) + 10, line
    assert answer >= 0 and lines[-1].endswith(f"= {answer}."), lines

def sampler(rng: random.Random, banned: set, used: set):
    """Training problems (30% hard), none sharing a triple with the eval set."""
    while True:
        q, lines, ans, triples = make_problem(rng, hard=rng.random() < 0.3)
        if banned.isdisjoint(triples):
            check(lines, ans)
            used.update(triples)
            if rng.random() < 0.3:
                lines[-1] = lines[-1].replace("So ", rng.choice(["Therefore ", "Thus "]), 1)
            yield q, lines, ans

def make_eval(rng: random.Random) -> tuple[list[dict], set]:
    """200 distinct items: 80 easy (one step, operands below 100), 60 as in training, 60 hard.
    No item is a pair of one-digit numbers (too few of those to hold any out)."""
    items, banned, seen = [], set(), set()
    while len(items) < 200:
        q, lines, ans, triples = make_problem(rng, hard=len(items) >= 140)
        easy_ok = len(items) >= 80 or (len(triples) == 1 and triples[0][2] < 100 and triples[0][0] < 100)
        if q not in seen and easy_ok and banned.isdisjoint(triples) and all(max(t[0], t[2]) >= 10 for t in triples):
            check(lines, ans)
            seen.add(q)
            banned.update(triples)
            items.append({"id": f"tiny_arith-{len(items):03d}", "question": q, "answer": str(ans)})
    return items, banned

def make_math(rng: random.Random, problems) -> list[dict]:
    docs, size = [], 0
    while size < MATH_BYTES:
        text = "\n\n".join(f"Question: {q}\n<think>\n" + "\n".join(lines) + f"\n</think>\n{rng.choice(ANSWERS) % a}"
                           for q, lines, a in (next(problems) for _ in range(rng.randint(3, 6))))
        docs.append({"id": f"math-{len(docs) + 1:06d}", "text": text})
        size += len(text.encode())
    return docs

def make_prompts(problems) -> list[dict]:
    prompts = {}
    while len(prompts) < 2000:
        q, _, ans = next(problems)
        prompts.setdefault(q, {"id": f"prompt-{len(prompts) + 1:04d}", "prompt": q, "answer": str(ans),
                               "source": "tiny_arith_train"})
    return list(prompts.values())

def make_chat(rng: random.Random, problems, banned: set, used: set) -> list[dict]:
    """Half thinking, half not; 30% have a second turn, often a follow-up on the first answer."""
    chats = []
    for i in range(500):
        think, messages = rng.random() < 0.5, []
        for turn in range(2 if rng.random() < 0.3 else 1):
            op, c = rng.choice([("+", number(rng, 2)), ("×", number(rng, 1)), ("-", number(rng, 2))])
            follow_up = turn and rng.random() < 0.5  # on the previous answer, when valid and not held out
            if follow_up and {"+": True, "-": c <= ans, "×": ans < 1000}[op] and key(ans, op, c) not in banned:
                q = {"+": f"Now add {c} to that.", "×": f"Now multiply that by {c}.",
                     "-": f"Now subtract {c} from that."}[op]
                lines, ans, triples = solve(ans, [(op, c)])
                check(lines, ans)
                used.update(triples)
            else:
                q, lines, ans = next(problems)
            reply = {"role": "assistant", "content": "The answer is \\boxed{%d}." % ans}
            reply.update({"reasoning_content": "\n".join(lines)} if think else {})
            messages += [{"role": "user", "content": f"{q} {'/think' if think else '/no_think'}"}, reply]
        chats.append({"id": f"chat-{i + 1:04d}", "messages": messages})
    return chats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    root = ap.parse_args().root
    if sys.version_info[:2] != (3, 11):
        print("warning: the shipped web/code corpora were read from CPython 3.11's stdlib", file=sys.stderr)
    evals, banned = make_eval(random.Random(1234))
    used: set = set()
    data = root / "datasets_spec" / "data"
    outputs = {data / "tiny_web.jsonl": make_web(random.Random(0)), data / "tiny_code.jsonl": make_code(),
               data / "tiny_math.jsonl": make_math(random.Random(1), sampler(random.Random(11), banned, used)),
               data / "tiny_prompts.jsonl": make_prompts(sampler(random.Random(2), banned, used)),
               data / "tiny_chat.jsonl": make_chat(random.Random(3), sampler(random.Random(33), banned, used),
                                                   banned, used),
               root / "evals" / "data" / "tiny_arith.jsonl": evals}
    assert used and used.isdisjoint(banned), "an eval triple leaked into the training data"
    total = 0
    print(f"{'file':<40} {'docs':>6} {'bytes':>10}")
    for path, rows in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        data_bytes = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        path.write_bytes(data_bytes)
        total += len(data_bytes)
        print(f"{path.relative_to(root).as_posix():<40} {len(rows):>6} {len(data_bytes):>10,}")
    print(f"{'total':<40} {sum(map(len, outputs.values())):>6} {total:>10,}")


if __name__ == "__main__":
    main()
