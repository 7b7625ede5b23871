"""Run untrusted model-written Python in a throwaway process.

Layers, because no single one holds everywhere: a fresh interpreter (`-I -S`: no user site, no
env vars, no site-packages) in its own session, a fresh temp dir as cwd and HOME, a minimal
environment, rlimits (address space, CPU, file size, processes), a wall-clock timeout that kills
the whole process group, and no network: a new network namespace when the kernel allows it
(root, or unprivileged user namespaces) plus an in-process guard on the `socket` module that
holds where namespaces are unavailable. The guard stops honest code that happens to reach
for the network; only the namespace also stops code that works around it (e.g. via `_socket`).

Limits and the guard are applied by a small runner inside the child, before the user code is
compiled, instead of in `preexec_fn`, which is unsafe when the caller runs worker threads.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache

_RUNNER = r"""
import os, sys
prog, status, mem, cpu, fsize, nproc, netns = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:8])
_fd = os.open(status, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
def _note(s): os.write(_fd, (s + "\n").encode())
import ctypes, resource, socket
net = "guard"
try:
    libc = ctypes.CDLL(None, use_errno=True)
    if not netns:
        pass
    elif libc.unshare(0x40000000) == 0:
        net = "netns+guard"
    elif libc.unshare(0x10000000 | 0x40000000) == 0:
        net = "userns+netns+guard"
except Exception:
    pass
def _off(*a, **k):
    raise OSError("network disabled")
class _Socket(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
            _off()
        super().__init__(family, type, proto, fileno)
socket.socket = socket.SocketType = _Socket
for _n in ("create_connection", "create_server", "getaddrinfo", "gethostbyname",
           "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
    setattr(socket, _n, _off)
_note("net=" + net)
for _r, _v in ((resource.RLIMIT_AS, (mem, mem)), (resource.RLIMIT_CPU, (cpu, cpu + 1)),
               (resource.RLIMIT_FSIZE, (fsize, fsize)), (resource.RLIMIT_NPROC, (nproc, nproc)),
               (resource.RLIMIT_CORE, (0, 0))):
    try:
        resource.setrlimit(_r, _v)
    except (ValueError, OSError):
        _note("unlimited=%d" % _r)
sys.argv = [prog]
try:
    with open(prog, encoding="utf-8") as _f:
        _code = compile(_f.read(), prog, "exec")
except (SyntaxError, ValueError) as _e:
    _note("syntax=" + type(_e).__name__)
    raise
try:
    exec(_code, {"__name__": "__main__", "__file__": prog, "__builtins__": __builtins__})
except SystemExit:
    raise
except BaseException as _e:
    _note("exc=" + type(_e).__name__)
    raise
"""
_MEMORY_HINTS = ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")


@dataclass
class RunResult:
    status: str
    """ok | timeout | memory | syntax_error | runtime_error"""
    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float
    network: str
    """The active no-network mechanism: netns+guard, userns+netns+guard or guard."""
    exc: str | None = None
    """Type name of the uncaught exception of the user code, if any."""
    workdir: str = ""
    notes: dict = field(default_factory=dict)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: str, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def run_python(code: str, stdin: str = "", timeout_s: float = 10.0, memory_mb: int = 1024,
               max_output: int = 1 << 20, max_file_mb: int = 64, max_procs: int = 256,
               site: bool = False, netns: bool = True) -> RunResult:
    """Run `code` as `__main__` with `stdin`; every temp file is removed before returning.
    `site` allows site-packages (numpy...); `netns=False` leaves only the socket guard."""
    root = tempfile.mkdtemp(prefix="q3-sandbox-")
    try:
        work = os.path.join(root, "work")
        os.mkdir(work, 0o700)
        prog, status = os.path.join(root, "prog.py"), os.path.join(root, "status")
        paths = {k: os.path.join(root, k) for k in ("stdin", "stdout", "stderr")}
        with open(prog, "w", encoding="utf-8") as f:
            f.write(code)
        with open(paths["stdin"], "w", encoding="utf-8") as f:
            f.write(stdin)
        cpu = int(timeout_s) + 1
        argv = [sys.executable, "-I", *([] if site else ["-S"]), "-c", _RUNNER, prog, status,
                *map(str, (memory_mb << 20, cpu, max_file_mb << 20, max_procs, int(netns)))]
        env = {"PATH": "/usr/bin:/bin", "HOME": work, "TMPDIR": work, "LANG": "C.UTF-8"}
        timed_out = False
        with open(paths["stdin"], "rb") as fin, open(paths["stdout"], "wb") as fout, \
                open(paths["stderr"], "wb") as ferr:
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=ferr, cwd=work, env=env,
                                    start_new_session=True, close_fds=True)
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _killpg(proc.pid)
                rc = proc.wait()
            elapsed = time.monotonic() - t0
            _killpg(proc.pid)  # stragglers the program forked
        notes: dict = {}
        if os.path.exists(status):
            for line in _read(status, 1 << 16).splitlines():
                k, _, v = line.partition("=")
                notes[k] = v
        out, err = _read(paths["stdout"], max_output), _read(paths["stderr"], max_output)
        exc = notes.get("exc") or notes.get("syntax")
        if timed_out or rc == -signal.SIGXCPU:
            state = "timeout"
        elif exc == "MemoryError" or (rc != 0 and any(h in err[-2000:] for h in _MEMORY_HINTS)):
            state = "memory"
        elif "syntax" in notes:
            state = "syntax_error"
        else:
            state = "ok" if rc == 0 else "runtime_error"
        return RunResult(state, rc, out, err, elapsed, notes.get("net", "unknown"), exc, work,
                         notes)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@lru_cache(maxsize=1)
def network_mechanism() -> str:
    """Which no-network mechanism the sandbox gets on this machine (probed once)."""
    return run_python("pass", timeout_s=10).network
