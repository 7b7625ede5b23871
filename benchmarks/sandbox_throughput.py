"""Code judgments per second: the bubblewrap sandbox and harness (now) vs the sandbox it replaced
(rlimits + network namespace + socket guard, the host filesystem visible; commit 678e2a2), on the
same programs and the same tests.

Both sides judge each program end to end: start an isolated interpreter, run the program against
its tests, return a verdict. Before: the asserts appended to the program, one process per stdin
case. Now: the program served in one bubblewrap sandbox while the tests run outside it
(assert-style), or one sandbox forking a child per stdin case.

    .venv/bin/python benchmarks/sandbox_throughput.py [--repeats 5] [--n 20] [--record]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
from record import Recorder, spread  # noqa: E402

OLD_COMMIT = "678e2a2"

ADD = "def add(a, b):\n    return a + b\n"
ASSERTS = "\n".join(f"assert add({i}, {i + 1}) == {2 * i + 1}" for i in range(20))
ECHO = "a, b = map(int, input().split())\nprint(a + b)\n"
CASES = [{"input": f"{i} {i * 3}\n", "output": f"{i * 4}\n"} for i in range(10)]


def old_sandbox():
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{OLD_COMMIT}:qwen3_recipe/verify/sandbox.py"],
                         capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_sandbox.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_sandbox", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_sandbox"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def workloads():
    from qwen3_recipe.verify.harness import run_script, run_stdio, same_output
    from qwen3_recipe.verify.sandbox import run_python
    old = old_sandbox()

    pairs = [(c["input"], c["output"]) for c in CASES]

    def old_stdio():
        return all(same_output(old.run_python(ECHO, c["input"], timeout_s=5).stdout, c["output"]) for c in CASES)

    return {
        "empty program": (lambda: old.run_python("pass", timeout_s=5).status == "ok",
                          lambda: run_python("pass", timeout_s=5).status == "ok"),
        "function + 20 asserts": (lambda: old.run_python(f"{ADD}\n{ASSERTS}\n", timeout_s=5).status == "ok",
                                  lambda: run_script(ADD, ASSERTS, timeout_s=5).ok),
        "stdin program, 10 cases": (old_stdio, lambda: run_stdio(ECHO, pairs, timeout_s=5).ok),
    }


def rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        assert fn(), "a judgment came out wrong"
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=20, help="judgments per timed round")
    ap.add_argument("--record", action="store_true", help="write results/13a.json (benchmarks/table.py)")
    args = ap.parse_args()
    recorder = Recorder("13a", args.record)
    from qwen3_recipe.verify.isolation import strict_available
    ok, why = strict_available()
    if not ok:
        sys.exit(f"no bubblewrap sandbox here: {why}")
    print(f"{'workload':26} {'before /s':>10} {'now /s':>10} {'now/before':>11}")
    result = {"repeats": args.repeats, "n": args.n, "target_ratio": 0.5, "workloads": {}}
    for name, (before, now) in workloads().items():
        before(), now()  # warm: imports, the isolation probe
        b, a = [], []
        for r in range(args.repeats):  # alternate the sides, the order switching: load hits both alike
            sides = [(b, before), (a, now)]
            for rates, fn in sides if r % 2 == 0 else sides[::-1]:
                rates.append(rate(fn, args.n))
        mb, ma = statistics.median(b), statistics.median(a)
        print(f"{name:26} {mb:10.1f} {ma:10.1f} {ma / mb:10.2f}x   (rounds: before {min(b):.1f}-{max(b):.1f}, "
              f"now {min(a):.1f}-{max(a):.1f})")
        result["workloads"][name] = {"before_per_s": spread(b, 1), "now_per_s": spread(a, 1),
                                     "ratio": spread((y / x for x, y in zip(b, a)), 2)}
    recorder.save(result)


if __name__ == "__main__":
    main()
