"""Judge a program by a benchmark's tests without letting the program touch the tests.

The program runs in the sandbox; the tests run here, in a namespace of their own, where each of
the program's functions is a `Remote` that forwards the call and gets back plain data (wire.py).
So the program cannot see the tests (they are never inside the sandbox), cannot replace `check`
or the assertion helpers (they live on this side), cannot end the run early and be counted as
passing (its death is `early_exit`), and cannot return an object that equals everything. Only the
harness says "correct": when the test code itself ran to its end.

Three conventions, the ones the Qwen3 report's code benchmarks use:
- `script`: a test script calling the program's functions by name (MBPP+, plain asserts), with
  an optional call at the end (HumanEval / EvalPlus: `check(<entry_point>)`);
- `functional`: argument lists and expected values (LiveCodeBench `functional`, `Solution().f`);
- `stdio`: stdin / expected stdout pairs (LiveCodeBench `stdin`, competitive programming).
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from qwen3_recipe.verify import wire
from qwen3_recipe.verify.sandbox import Sandbox, SandboxError, run_cases


@dataclass
class Outcome:
    reason: str
    """correct, wrong_answer, early_exit, timeout, memory, runtime_error, syntax_error,
    missing_function."""
    passed: int = 0
    total: int = 0
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason == "correct"


class CandidateGone(BaseException):
    """The program died or stalled during a call. A BaseException, so that test code's
    `except Exception` cannot swallow it; the session also remembers it."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class RemoteError(Exception):
    """An exception the program raised whose type is not a builtin one."""


# Raised by the program, these would steer the tests' own control flow: StopIteration ends the
# loop over the cases (a reward hack), AssertionError fakes a failed assert of the test.
_NOT_REBUILT = (AssertionError, StopIteration, StopAsyncIteration, GeneratorExit)


def _remote_exception(name: str, msg: str) -> Exception:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, _NOT_REBUILT):
        try:
            return cls(msg)
        except Exception:
            pass
    return RemoteError(f"{name}: {msg}")


class Session:
    """The program loaded in a serving sandbox, and its functions as Remotes."""

    def __init__(self, box: Sandbox, deadline: float):
        self.box, self.deadline, self.gone, self.calls, self.raised = box, deadline, None, 0, None

    def remote(self, target: str) -> Remote:
        return Remote(self, target)

    def call(self, target: str, args: tuple, kwargs: dict):
        if self.gone:
            raise CandidateGone(*self.gone)
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.gone = ("timeout", "time limit reached")
            raise CandidateGone(*self.gone)
        self.calls += 1
        self.raised = None
        try:
            reply = self.box.call(target, [wire.encode(a) for a in args],
                                  wire.encode(kwargs) if kwargs else None, left)
        except SandboxError as e:
            self.gone = (_gone(e), str(e))
            raise CandidateGone(*self.gone) from None
        if "exit" in reply:
            self.gone = ("early_exit", f"{reply['exit']} during {target}()")
            raise CandidateGone(*self.gone)
        if "raise" in reply:
            self.raised = reply["raise"]
            raise _remote_exception(reply["raise"], reply.get("msg", ""))
        return wire.decode(reply["ok"])


class Remote:
    def __init__(self, session: Session, target: str):
        self._session, self._target = session, target
        self.__name__ = target.rsplit(".", 1)[-1]

    def __call__(self, *args, **kwargs):
        return self._session.call(self._target, args, kwargs)

    def __repr__(self):
        return f"<sandboxed {self._target}>"


def _gone(e: SandboxError) -> str:
    return e.reason if e.reason in ("timeout", "early_exit", "output_limit") else "runtime_error"


def _serve(code: str, timeout_s: float, memory_mb: int, cpu_s: float) -> tuple[Sandbox | None, Outcome | None]:
    """A serving sandbox with the program loaded (its top-level code gets `timeout_s`; the whole
    process `cpu_s` CPU seconds), or the outcome that ended it first."""
    box = None
    try:
        box = Sandbox(code, "serve", timeout_s=timeout_s, memory_mb=memory_mb, cpu_s=cpu_s)
        if not box.started.get("compiled"):
            box.close()
            return None, Outcome("syntax_error", details={"error": box.started.get("msg")})
        ready = box.recv(timeout_s)
    except SandboxError as e:
        if box is not None:
            box.close()
        return None, Outcome(_gone(e), details={"error": str(e)})
    if not ready.get("ready"):
        box.close()
        reason = "early_exit" if "exit" in ready else "memory" if ready.get("raise") == "MemoryError" \
            else "runtime_error"
        return None, Outcome(reason, details={"exc": ready.get("exit") or ready.get("raise"), "msg": ready.get("msg")})
    box.names = ready["names"]
    return box, None


def run_script(code: str, tests: str, then_call: tuple[str, str] | None = None,
               timeout_s: float = 10.0, memory_mb: int = 1024) -> Outcome:
    """Execute benchmark `tests` here with the program's functions as Remotes; `then_call`
    (fn, arg) calls `fn(Remote(arg))` after (HumanEval's `check(candidate)`)."""
    compiled = compile(tests, "<benchmark tests>", "exec", dont_inherit=True, optimize=0)
    box, stop = _serve(code, timeout_s, memory_mb, timeout_s)
    if stop:
        return stop
    with box:
        session = Session(box, time.monotonic() + timeout_s)
        ns = {"__name__": "__tests__", "__builtins__": builtins}
        # the program's functions, except any that would shadow a builtin the tests rely on
        entry = then_call[1] if then_call else None
        ns.update({n: session.remote(n) for n in box.names if n == entry or not hasattr(builtins, n)})
        if then_call and then_call[1] not in box.names:
            return Outcome("missing_function", 0, 1, {"function": then_call[1], "defined": box.names})
        try:
            exec(compiled, ns)  # the benchmark's own code: trusted, and never inside the sandbox
            if then_call:
                check = ns.get(then_call[0])
                if check is None or isinstance(check, Remote):  # the program's own `check` never judges
                    raise ValueError(f"the benchmark's tests define no `{then_call[0]}`")
                check(session.remote(then_call[1]))
        except CandidateGone:
            pass
        except AssertionError as e:
            return Outcome("wrong_answer", 0, 1, {"calls": session.calls, "assert": str(e)[:300]})
        except Exception as e:
            reason = "runtime_error" if session.raised else "wrong_answer"
            return Outcome(reason, 0, 1, {"calls": session.calls, "exc": type(e).__name__, "msg": str(e)[:300]})
        if session.gone:
            return Outcome(session.gone[0], 0, 1, {"calls": session.calls, "error": session.gone[1]})
        if session.calls == 0:
            return Outcome("wrong_answer", 0, 1, {"calls": 0, "error": "the tests never called the program"})
        return Outcome("correct", 1, 1, {"calls": session.calls})


def same_value(got, want) -> bool:
    """LiveCodeBench's functional comparison: a returned tuple reads as a list, then `==`."""
    return (list(got) if isinstance(got, tuple) else got) == want


def run_functional(code: str, target: str, cases: list[tuple[list, object]],
                   timeout_s: float = 10.0, memory_mb: int = 1024) -> Outcome:
    """Call `target` ("f" or "Solution.f") on each case's arguments; compare here."""
    box, stop = _serve(code, timeout_s, memory_mb, timeout_s * max(1, len(cases)))
    if stop:
        return stop
    with box:
        if target.split(".")[0] not in box.names:
            return Outcome("missing_function", 0, len(cases), {"function": target, "defined": box.names})
        session = Session(box, time.monotonic() + timeout_s * len(cases))
        for i, (args, want) in enumerate(cases):
            try:
                got = session.call(target, tuple(args), {})
            except CandidateGone as g:
                return Outcome(g.reason, i, len(cases), {"case": i, "error": str(g)})
            except Exception as e:
                return Outcome("runtime_error", i, len(cases),
                               {"case": i, "exc": type(e).__name__, "msg": str(e)[:300]})
            if not same_value(got, want):
                return Outcome("wrong_answer", i, len(cases), {"case": i, "got": repr(got)[:300]})
        return Outcome("correct", len(cases), len(cases), {"calls": session.calls})


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(t) for t in line.split()]
    except InvalidOperation:
        return None


def same_output(got: str, want: str) -> bool:
    """LiveCodeBench's stdout check: the stripped lines, each equal as text or as a list of
    decimal numbers (exact: "1.0" matches "1", "0.3333" does not match "0.33333")."""
    g, w = ([ln.strip() for ln in s.strip().split("\n")] for s in (got, want))
    if len(g) != len(w):
        return False
    for gl, wl in zip(g, w):
        if gl != wl and (_decimals(gl) is None or _decimals(gl) != _decimals(wl)):
            return False
    return True


def run_stdio(code: str, cases: list[tuple[str, str]], timeout_s: float = 10.0,
              memory_mb: int = 1024) -> Outcome:
    """Run the program on each case's stdin; its stdout must match the expected one."""
    def failed(i: int, res) -> bool:
        return res.status != "ok" or not same_output(res.stdout, cases[i][1])
    try:  # stops at the first failing case, as LiveCodeBench does
        info, runs = run_cases(code, [c[0] for c in cases], timeout_s=timeout_s, memory_mb=memory_mb,
                               stop=failed)
    except SandboxError as e:
        return Outcome(_gone(e), 0, len(cases), {"error": str(e)})
    if not info.get("compiled"):
        return Outcome("syntax_error", 0, len(cases), {"error": info.get("msg")})
    for i, res in enumerate(runs):
        info_i = {"case": i, "elapsed": res.elapsed, "network": res.network}
        if res.status != "ok":
            return Outcome(res.status, i, len(cases), {**info_i, "exc": res.exc, "stderr": res.stderr[-1000:]})
        if not same_output(res.stdout, cases[i][1]):
            return Outcome("wrong_answer", i, len(cases), {**info_i, "stdout": res.stdout[-300:]})
    return Outcome("correct", len(cases), len(cases), {"network": runs[0].network if runs else None})
