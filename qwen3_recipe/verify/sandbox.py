"""Run untrusted model-written Python: one sandboxed process per judgment (isolation.py says how).

`run_cases` runs a program as `__main__` on each of several stdin inputs (competitive-programming
tests) and returns each run's exit, output and exception; `run_python` is the one-input case.
`Sandbox(code, mode="serve")` keeps a program loaded and answers calls to its functions, so a
benchmark's own test code can run outside the sandbox against it (harness.py).

Limits that bind inside: address space, CPU seconds (per run), file size, processes; a wall-clock
deadline per run kills it, and what it forked or setsid'd dies with it. Every temp file is
removed before returning.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from qwen3_recipe.verify import isolation

_HERE = Path(__file__).resolve().parent
_MEMORY_HINTS = ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")


@lru_cache(maxsize=1)
def _runner_source() -> str:
    return (_HERE / "wire.py").read_text() + "\n" + (_HERE / "sandbox_runner.py").read_text()


@dataclass
class RunResult:
    status: str
    """ok | timeout | memory | syntax_error | runtime_error"""
    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float
    network: str
    """How the network is cut: bwrap (namespaces), or in weak mode netns+guard,
    userns+netns+guard or guard."""
    exc: str | None = None
    """Type name of the uncaught exception of the user code, if any."""
    workdir: str = ""
    notes: dict = field(default_factory=dict)


def _status(case: dict) -> str:
    rc, exc = case["rc"], case.get("exc")
    if case["timeout"] or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout"
    if exc == "MemoryError" or (rc != 0 and any(h in case["stderr"][-2000:] for h in _MEMORY_HINTS)):
        return "memory"
    return "ok" if rc == 0 else "runtime_error"


class SandboxError(RuntimeError):
    """The sandboxed process died or fell silent outside a run (early exit, crash, deadline)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class Sandbox:
    """One sandboxed interpreter for `code`: `mode="cases"` with `stdins`, or `mode="serve"`.
    `cpu_s` (default: the timeout) bounds the CPU seconds of the whole serving process; scratch
    space (/sandbox and /tmp) is a size-bounded tmpfs of `scratch_mb` each."""

    def __init__(self, code: str, mode: str = "cases", stdins: list[str] | None = None,
                 timeout_s: float = 10.0, memory_mb: int = 1024, max_output: int = 1 << 20,
                 max_file_mb: int = 64, max_procs: int = 64, site: bool = False,
                 allow_weak: bool | None = None, isolation_mode: str | None = None,
                 cpu_s: float | None = None, scratch_mb: int = 128):
        self.isolation = isolation.choose(allow_weak, isolation_mode)
        self.mode, self.timeout_s = mode, float(timeout_s)
        self.max_message = 2 * max_output + (1 << 20)  # a case's stdout and stderr tail, encoded
        self.names: list[str] = []
        """In serve mode, the callables the program defined (set by whoever reads `ready`)."""
        self.root = tempfile.mkdtemp(prefix="q3-sandbox-")
        self._fds: list[int] = []
        self._proc, self._uid = None, None
        try:
            self._start(code, stdins or [], memory_mb, max_output, max_file_mb, max_procs, site,
                        cpu_s or timeout_s, scratch_mb)
            self.started = self.recv(self.timeout_s + 30)  # interpreter start-up and compile
        except BaseException:
            self.close()
            raise
        self.network = self.started.get("net", "unknown")

    def _start(self, code, stdins, memory_mb, max_output, max_file_mb, max_procs, site, cpu_s, scratch_mb):
        strict = self.isolation == "bwrap"
        work, inp = os.path.join(self.root, "work"), os.path.join(self.root, "in")
        os.mkdir(work, 0o700)
        os.mkdir(inp, 0o755)
        Path(inp, "prog.py").write_text(code, encoding="utf-8")
        Path(inp, "stdins.json").write_text(json.dumps(stdins), encoding="utf-8")
        uid = self._uid = isolation.sandbox_uid() if strict else None
        self.workdir = "/sandbox" if strict else work
        reply_r, reply_w = os.pipe()
        req_r, req_w = os.pipe()
        info_r, info_w = os.pipe()  # bwrap reports the pid of the namespace's init there
        self._reply_r, self._req_w, self._info_r = reply_r, req_w, info_r
        self._fds = [reply_r, req_w, info_r]
        cfg = {"mode": self.mode, "isolation": self.isolation, "uid": uid,
               "prog": "/input/prog.py" if strict else f"{inp}/prog.py",
               "stdins": "/input/stdins.json" if strict else f"{inp}/stdins.json",
               "tmp": "/tmp" if strict else work, "reply_fd": reply_w, "request_fd": req_r,
               "mem": memory_mb << 20, "cpu": int(cpu_s) + 1, "fsize": max_file_mb << 20,
               "nproc": max_procs, "timeout": self.timeout_s, "max_output": max_output,
               "site": isolation.site_dirs() if site else []}
        py = [isolation.interpreter(), "-I", *([] if site else ["-S"]), "-c", _runner_source(), json.dumps(cfg)]
        if strict:
            argv = [*isolation.bwrap_argv(scratch_mb << 20, site), "--info-fd", str(info_w),
                    "--ro-bind", inp, "/input", "--setenv", "HOME", "/sandbox", "--setenv", "TMPDIR", "/tmp",
                    "--setenv", "LANG", "C.UTF-8", "--setenv", "PATH", "/usr/bin:/bin", *py]
            env = {"PATH": "/usr/bin:/bin"}
        else:
            argv, env = py, {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
        self._errlog = os.path.join(self.root, "stderr")  # bwrap's and the runner's own errors
        with open(self._errlog, "wb") as err:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=err, cwd=work, env=env, close_fds=True,
                                          pass_fds=(reply_w, req_r, info_w), start_new_session=True)
        for fd in (reply_w, req_r, info_w):
            os.close(fd)
        self._buf, self._ids = bytearray(), 0
        self._poll = select.poll()  # not select(): fds above 1024 in processes running vLLM or torch
        self._poll.register(reply_r, select.POLLIN)

    def _stderr_tail(self) -> str:
        try:
            with open(self._errlog, "rb") as f:
                f.seek(max(0, os.path.getsize(self._errlog) - 500))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def recv(self, timeout: float) -> dict:
        """The next message from the runner; SandboxError when it is gone, silent too long, or
        sends more than a message can hold."""
        deadline = time.monotonic() + timeout
        start = 0
        while (end := self._buf.find(b"\n", start)) < 0:
            start = len(self._buf)
            if start > self.max_message:
                raise SandboxError("output_limit", f"a message over {self.max_message} bytes")
            left = deadline - time.monotonic()
            if left <= 0 or not self._poll.poll(left * 1000):
                raise SandboxError("timeout", f"no answer within {timeout:.1f}s")
            chunk = os.read(self._reply_r, 1 << 20)
            if not chunk:  # the pipe closed: the process ended, or the program closed it
                raise SandboxError("early_exit", f"the program ended its channel (exit {self._proc.poll()}) "
                                                 f"{self._stderr_tail()}".strip())
            self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[:end + 1]
        return json.loads(line)

    def call(self, target: str, args: list, kwargs: dict | None, timeout: float) -> dict:
        """Call `target` ("name" or "Class.method") with wire-encoded `args` and `kwargs`; the
        runner's reply."""
        from qwen3_recipe.verify.wire import dumps
        self._ids += 1
        data = dumps({"id": self._ids, "call": target, "args": args, "kwargs": kwargs})
        try:
            while data:
                data = data[os.write(self._req_w, data):]
        except OSError:
            raise SandboxError("early_exit", "the program closed its request pipe") from None
        reply = self.recv(timeout)
        if reply.get("id") != self._ids:
            raise SandboxError("protocol", f"reply {reply.get('id')} to call {self._ids}")
        return reply

    def _namespace_init(self) -> int | None:
        try:
            p = select.poll()
            p.register(self._info_r, select.POLLIN)
            if not p.poll(0):
                return None
            return int(json.loads(os.read(self._info_r, 4096) or b"{}").get("child-pid"))
        except (ValueError, TypeError, OSError, AttributeError):
            return None

    def close(self) -> None:
        """Kill the namespace's init first: the kernel then kills every process in it before
        bwrap can exit, so nothing the program started outlives this call."""
        if self._proc is not None:
            init = self._namespace_init() if self.isolation == "bwrap" else None
            if init is not None:
                try:
                    os.kill(init, signal.SIGKILL)
                    self._proc.wait(timeout=10)
                except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._proc.wait()
            self._proc = None
        isolation.release_uid(self._uid)  # its processes are gone: another sandbox may take it
        self._uid = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_cases(code: str, stdins: list[str], timeout_s: float = 10.0, stop=None,
              **kw) -> tuple[dict, list[RunResult]]:
    """Run `code` as `__main__` once per input; (start-up info, one RunResult per run made).
    `stop(i, result)` True ends it after run i (the rest are killed unrun). A syntax error leaves
    the list empty (`info["compiled"]` is False)."""
    with Sandbox(code, "cases", stdins, timeout_s=timeout_s, **kw) as box:
        info, out = box.started, []
        if not info.get("compiled"):
            return info, out
        for i in range(len(stdins)):
            c = box.recv(timeout_s + 10)
            out.append(RunResult(_status(c), c["rc"], c["stdout"], c["stderr"], c["elapsed"],
                                 box.network, c.get("exc"), box.workdir, {"case": c["case"]}))
            if stop is not None and stop(i, out[-1]):
                break
        return info, out


def run_python(code: str, stdin: str = "", timeout_s: float = 10.0, memory_mb: int = 1024,
               **kw) -> RunResult:
    """Run `code` as `__main__` with `stdin` in the sandbox."""
    t0 = time.monotonic()
    try:
        info, runs = run_cases(code, [stdin], timeout_s=timeout_s, memory_mb=memory_mb, **kw)
    except SandboxError as e:
        return RunResult("timeout" if e.reason == "timeout" else "runtime_error", None, "", str(e),
                         time.monotonic() - t0, "unknown")
    if not info.get("compiled"):
        return RunResult("syntax_error", 1, "", f"{info.get('error')}: {info.get('msg')}",
                         time.monotonic() - t0, info.get("net", "unknown"), info.get("error"))
    return runs[0]


@lru_cache(maxsize=1)
def network_mechanism() -> str:
    """Which no-network mechanism the sandbox gets on this machine (probed once)."""
    return run_python("pass", timeout_s=10).network
