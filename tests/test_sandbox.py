"""The code sandbox and harness under attack: every reward hack here must score not correct.

Runs the real bubblewrap sandbox (installed by scripts/setup.sh / .ci/run); where bubblewrap cannot
start, the strict tests skip and the refusal test still runs.
"""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path

import pytest

from qwen3_recipe.verify import isolation
from qwen3_recipe.verify.sandbox import run_python
from qwen3_recipe.verify.verifiers import build_verifier

STRICT, WHY = isolation.strict_available()
strict = pytest.mark.skipif(not STRICT, reason=f"no bubblewrap sandbox here: {WHY}")

MARKER = "q3-secret-test-marker-7731"
CHECK = f"""
def check(candidate):
    # {MARKER}
    for a, b in [(1, 2), (3, 4), (-5, 5), (10, 0)]:
        assert candidate(a, b) == a + b
"""
ITEM = {"tests": CHECK, "test_format": "humaneval", "entry_point": "add",
        "starter_code": 'def add(a, b):\n    """Return a + b."""\n'}
IO_ITEM = {"test_format": "stdio", "tests": [{"input": "2 3\n", "output": "5\n"},
                                             {"input": "10 -4\n", "output": "6\n"}]}


def verify(code: str, item=ITEM, **kw):
    v = build_verifier({"type": "code", "timeout_s": kw.pop("timeout_s", 5), "memory_mb": 256})
    return v.verify(f"<think>\nok\n</think>\n\n```python\n{code}\n```", None, item)


def test_right_and_wrong():
    assert verify("def add(a, b):\n    return a + b").ok
    assert verify("    return a + b").ok  # a completion of the prompt's body
    wrong = verify("def add(a, b):\n    return a - b")
    assert (wrong.ok, wrong.reason) == (False, "wrong_answer")


@pytest.mark.parametrize("code", [
    "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)",
    "import os\ndef add(a, b):\n    return 0\nos._exit(0)",
    "def add(a, b):\n    return 0\nraise SystemExit",
    "import os\ndef add(a, b):\n    os._exit(0)",          # exits during the first call
    "def add(a, b):\n    raise SystemExit(0)",
    "import sys\ndef add(a, b):\n    sys.exit()",
], ids=["sys.exit", "os._exit", "raise SystemExit", "os._exit in call", "SystemExit in call",
        "sys.exit in call"])
def test_early_exit_is_its_own_verdict(code):
    v = verify(code)
    assert (v.ok, v.reason) == (False, "early_exit"), v.details


@pytest.mark.parametrize("code", [
    "def add(a, b):\n    return 0\nprint('All tests passed')\nprint('OK')",
    "def add(a, b):\n    return 0\ndef check(candidate):\n    pass",
    "def add(a, b):\n    return 0\nimport builtins\nbuiltins.AssertionError = ZeroDivisionError",
    "class Yes:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Yes()",
    "def add(a, b):\n    return 0\ndef isinstance(*a):\n    return True\ndef len(x):\n    return 0",
], ids=["print pass", "overwrite check", "patch builtins", "always-equal object", "shadow builtins"])
def test_hacks_on_the_tests_fail(code):
    v = verify(code)
    assert not v.ok and v.reason == "wrong_answer", (v.reason, v.details)


def test_printing_the_expected_output_fails_hidden_cases():
    """A program that prints the example's answer without computing passes that case only."""
    v = verify("print(5)", IO_ITEM)
    assert (v.ok, v.reason, v.details["case"]) == (False, "wrong_answer", 1)
    assert verify("a, b = map(int, input().split())\nprint(a + b)", IO_ITEM).ok
    # exiting with status 0 is fine for a stdio program: its output is what is judged
    assert verify("import sys\na, b = map(int, input().split())\nprint(a + b)\nsys.exit(0)", IO_ITEM).ok


@strict
def test_tests_are_not_on_disk():
    code = f"""
import os
def add(a, b):
    for top in ("/", "/sandbox", "/input", "/tmp", os.getcwd()):
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/usr", "/dev", "/root")]
            for f in files:
                try:
                    if b"{MARKER[:9]}" + b"{MARKER[9:]}" in open(os.path.join(root, f), "rb").read(1 << 20):
                        return a + b
                except OSError:
                    pass
    return 0
"""
    v = verify(code, timeout_s=20)
    assert v.reason == "wrong_answer", v.details  # (the walk reads the program's own copy too)


@strict
def test_host_files_are_invisible():
    res = run_python("import os\nfor p in ('/etc/passwd', '/etc/shadow', '/root/.bashrc', '/work', "
                     f"{str(Path(__file__).resolve().parent)!r}):\n"
                     "    print(p, os.path.exists(p))\nprint(sorted(os.listdir('/')))")
    lines = res.stdout.splitlines()
    assert all(line.endswith("False") for line in lines[:-1]), res.stdout
    assert set(eval(lines[-1])) <= {"bin", "lib", "lib64", "sbin", "usr", "root", "proc", "dev", "tmp",
                                    "sandbox", "input"}


@strict
def test_runs_as_an_unprivileged_user_with_limits_that_bind():
    res = run_python("import os, resource\nprint(os.getuid(), os.geteuid())\n"
                     "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
                     "n = 0\ntry:\n    while n < 200:\n        if os.fork() == 0:\n            import time\n"
                     "            time.sleep(5)\n            os._exit(0)\n        n += 1\n"
                     "except OSError as e:\n    print('fork stopped at', n)\n")
    uid, euid = map(int, res.stdout.splitlines()[0].split())
    assert uid != 0 and euid != 0
    assert int(res.stdout.splitlines()[1], 16) == 0  # no capabilities
    assert "fork stopped at" in res.stdout  # RLIMIT_NPROC binds (64)


def _processes_of(uid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "status").read_text().split("Uid:")[1].split()[0]) == uid:
                    out.append(int(d.name))
            except (OSError, IndexError):
                continue
    return out


@strict
def test_setsid_child_dies_with_the_sandbox():
    """A child that leaves the session and would write a file 2 s after the verdict is dead when
    the verdict returns (the whole pid namespace goes): no process of the sandbox's uid is left."""
    res = run_python("import os, time\nprint(os.getuid(), flush=True)\n"
                     "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(2)\n"
                     "        open('/sandbox/late.txt', 'w').write('still here')\n        os._exit(0)\n"
                     "    os._exit(0)\n")
    uid = int(res.stdout.split()[0])
    assert res.status == "ok" and uid != 0
    if os.geteuid() == 0:  # root runs each sandbox as a pool uid of its own
        assert _processes_of(uid) == []
        time.sleep(2.5)
        assert _processes_of(uid) == []


@strict
def test_no_writes_outside_scratch():
    res = run_python("import os\nfor p in ('/usr/q3-pwned', '/root/q3-pwned', '/q3-pwned', '/tmp/q3-pwned-tmp',"
                     " 'here.txt'):\n    try:\n        open(p, 'w').write('x')\n        print(p, 'written')\n"
                     "    except OSError as e:\n        print(p, 'refused')\n")
    got = dict(line.split() for line in res.stdout.splitlines())
    assert got["/usr/q3-pwned"] == got["/root/q3-pwned"] == got["/q3-pwned"] == "refused"
    assert got["here.txt"] == "written"  # the scratch dir
    assert not os.path.exists("/tmp/q3-pwned-tmp")  # the sandbox's /tmp is its own


@pytest.fixture
def listeners(tmp_path):
    tcp = socket.create_server(("127.0.0.1", 0))
    unix_path = str(tmp_path / "host.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0q3-sandbox-test-%d" % os.getpid())
    abstract.listen()
    yield tcp, unix, unix_path, abstract
    for s in (tcp, unix, abstract):
        s.close()


@strict
def test_no_network_of_any_family(listeners):
    tcp, unix, unix_path, abstract = listeners
    port = tcp.getsockname()[1]
    code = f"""
import _socket, socket
def add(a, b):
    hits = 0
    for fam, addr in ((socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_UNIX, {unix_path!r}),
                      (socket.AF_UNIX, {abstract.getsockname()!r}), (socket.AF_INET6, ("::1", {port}))):
        try:
            s = _socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(1)
            s.connect(addr)
            hits += 1
        except OSError:
            pass
    return a + b if hits else 0
"""
    v = verify(code)
    assert v.reason == "wrong_answer", v.details
    assert not select.select([tcp, unix, abstract], [], [], 0.3)[0]


def test_memory_and_time_limits():
    v = verify("x = bytearray(10**10)\ndef add(a, b):\n    return a + b")
    assert v.reason == "memory", v.details
    t0 = time.monotonic()
    v = verify("def add(a, b):\n    while True:\n        pass", timeout_s=1)
    assert v.reason == "timeout" and time.monotonic() - t0 < 4


def test_refuses_without_isolation_unless_allowed(monkeypatch):
    monkeypatch.setattr(isolation, "strict_available", lambda: (False, "no bubblewrap in this test"))
    with pytest.raises(isolation.SandboxUnavailable, match="allow_weak"):
        run_python("print(1)")
    res = run_python("print(1)", allow_weak=True)
    assert res.stdout == "1\n" and res.network.endswith("guard")


# -- attacks on the judging process itself (the verifier must return, quickly, with a verdict) ----

def test_a_program_that_closes_its_channel_and_sleeps_does_not_hang_the_verifier():
    code = ("import os, time, __main__\nos.close(__main__._cfg['reply_fd'])\ntime.sleep(1000)\n"
            "def add(a, b):\n    return a + b")
    t0 = time.monotonic()
    v = verify(code, timeout_s=3)
    assert not v.ok and v.reason in ("early_exit", "timeout") and time.monotonic() - t0 < 10


def test_a_flood_without_newline_is_cut_off():
    code = ("import os, __main__\ndef add(a, b):\n    while True:\n"
            "        os.write(__main__._cfg['reply_fd'], b'x' * (1 << 20))")
    t0 = time.monotonic()
    v = verify(code, timeout_s=20)
    assert (v.ok, v.reason) == (False, "output_limit") and time.monotonic() - t0 < 15


@pytest.mark.parametrize("code", ["x = " + "-" * 100_000 + "1", "y = a" + ".b" * 200_000])
def test_code_that_cannot_even_compile_is_a_verdict(code):
    v = verify(code)
    assert not v.ok and v.reason == "syntax_error"


def test_stop_iteration_cannot_end_the_tests_early():
    """A remote StopIteration rebuilt as the real one would end a test's loop over the cases."""
    tests = "for got, want in zip(map(lambda a: add(a, 1), range(5)), [1, 2, 3, 4, 5]):\n    assert got == want"
    item = {"tests": tests, "test_format": "script"}
    assert verify("def add(a, b):\n    return a + b", item).ok
    v = verify("def add(a, b):\n    raise StopIteration", item)
    assert not v.ok and v.reason == "runtime_error"


def test_subclasses_of_plain_types_cross_as_values():
    item = {"tests": "from collections import Counter\nassert count('abca') == {'a': 2, 'b': 1, 'c': 1}\n"
                     "assert pair(1) == (1, 2)\nassert flag() == 1", "test_format": "script"}
    code = ("from collections import Counter, namedtuple\nimport enum\nP = namedtuple('P', 'x y')\n"
            "class F(enum.IntEnum):\n    ON = 1\n"
            "def count(s):\n    return Counter(s)\ndef pair(x):\n    return P(x, x + 1)\ndef flag():\n    return F.ON")
    assert verify(code, item).ok


def test_opaque_values_pass_no_test():
    item = {"tests": "assert f() != 3\nassert f()", "test_format": "script"}
    assert not verify("def f():\n    return iter([])", item).ok


@strict
def test_scratch_space_is_bounded():
    """/sandbox and /tmp are tmpfs of 128 MiB: a program cannot fill the host's memory or disk.
    (Each is emptied before printing: the run's own output is captured under /tmp.)"""
    res = run_python("import os\nfor d in ('/sandbox', '/tmp'):\n    written = 0\n    for i in range(8):\n"
                     "        try:\n            open(f'{d}/big{i}', 'wb').write(b'x' * (60 << 20))\n"
                     "            written += 60\n        except OSError:\n            break\n"
                     "    for i in range(8):\n        if os.path.exists(f'{d}/big{i}'):\n"
                     "            os.remove(f'{d}/big{i}')\n    print(d, written)", memory_mb=512)
    got = dict(line.split() for line in res.stdout.splitlines())
    assert res.status == "ok" and all(int(v) <= 128 for v in got.values()) and len(got) == 2, res.stdout
