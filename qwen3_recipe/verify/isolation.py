"""How the sandbox isolates a process from the host: bubblewrap, or a refusal.

Strict isolation (`bwrap`): new pid, network, ipc, uts and mount namespaces; a filesystem that
holds only the interpreter (read-only: `/usr` and the Python prefix, plus site-packages when
asked) and one writable scratch directory; every process dies with the sandbox (pid namespace);
and an unprivileged user, so the process limits (RLIMIT_NPROC) bind. Run as root, bwrap mounts
as root and the runner then drops to a uid of its own from a pool (one per concurrent sandbox);
run as a user, bwrap makes a user namespace.

Weak isolation (`weak`: fresh interpreter, rlimits, a network namespace where the kernel allows
it and a socket guard) shows the host filesystem; it is used only when the recipe says
`execution.sandbox: allow_weak`, after one warning.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from functools import lru_cache
from pathlib import Path

UID_BASE = 61000
"""Root drops sandboxes to uids UID_BASE .. UID_BASE+UID_POOL-1 (no passwd entry needed)."""
UID_POOL = 64
_next_uid = itertools.count(os.getpid())  # processes start at different places in the pool
_uid_lock = threading.Lock()
_held: dict[int, int] = {}


class SandboxUnavailable(RuntimeError):
    """Strict isolation is not available here and the weaker mode was not allowed."""


def sandbox_uid() -> int | None:
    """The uid the next sandbox runs as (root only; None for an unprivileged caller): one of the
    pool not held by another sandbox of any process (a lock file each), so no two sandboxes share
    a process count; when all are held, the next in turn."""
    if os.geteuid() != 0:
        return None
    import fcntl
    with _uid_lock:
        start = next(_next_uid)
        for i in range(UID_POOL):
            uid = UID_BASE + (start + i) % UID_POOL
            fd = os.open(os.path.join(_lock_dir(), str(uid)), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            _held[uid] = fd
            return uid
        return UID_BASE + start % UID_POOL


def release_uid(uid: int | None) -> None:
    fd = _held.pop(uid, None) if uid is not None else None
    if fd is not None:
        os.close(fd)


@lru_cache(maxsize=1)
def _lock_dir() -> str:
    import tempfile
    path = os.path.join(tempfile.gettempdir(), "qwen3-recipe-sandbox-uids")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def interpreter() -> str:
    """The base interpreter (a venv's python is a symlink into its prefix)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])})


def _ro_binds(site: bool) -> list[str]:
    dirs = sorted({"/usr", os.path.realpath(sys.base_prefix), os.path.dirname(interpreter()),
                   *(site_dirs() if site else [])})
    kept = [d for d in dirs if not any(d.startswith(p.rstrip("/") + "/") for p in dirs if p != d)]
    out: list[str] = []
    for d in kept:  # parents made 0755 first: bwrap would copy the host's modes (/root is 0700)
        parents = [p for p in Path(d).parents if str(p) != "/"][::-1]
        for p in parents:
            out += ["--perms", "0755", "--dir", str(p)]
        out += ["--ro-bind", d, d]
    for link in ("/bin", "/lib", "/lib64", "/sbin"):  # merged-/usr layouts: keep the links
        if os.path.islink(link):
            out += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            out += ["--ro-bind", link, link]
    return out


def bwrap_argv(scratch_bytes: int, site: bool) -> list[str]:
    """The bubblewrap prefix: the writable places are /sandbox (the working dir) and /tmp, each a
    tmpfs of `scratch_bytes` (a host dir would let a program fill the host's disk)."""
    argv = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session",
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox", *_ro_binds(site),
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(scratch_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(scratch_bytes), "--tmpfs", "/sandbox",
            "--chdir", "/sandbox", "--clearenv"]
    if os.geteuid() == 0:  # the runner needs these two to drop to its own uid, then has none
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    return argv


@lru_cache(maxsize=1)
def strict_available() -> tuple[bool, str]:
    """(True, "bwrap") when a bubblewrap sandbox starts here, else (False, why)."""
    if shutil.which("bwrap") is None:
        return False, "bubblewrap (`bwrap`) is not installed (Debian: apt-get install bubblewrap)"
    try:
        res = subprocess.run([*bwrap_argv(1 << 20, False), interpreter(), "-I", "-S", "-c", "print('ok')"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bwrap could not start: {e}"
    if res.returncode != 0 or res.stdout.strip() != "ok":
        return False, f"bwrap could not start a sandbox here: {res.stderr.strip()[-300:]}"
    return True, "bwrap"


_POLICY = {"mode": "strict"}
_warned: set[str] = set()


def set_policy(mode: str) -> None:
    """`strict` (refuse without bubblewrap) or `allow_weak` (fall back, warning once)."""
    if mode not in ("strict", "allow_weak"):
        raise ValueError(f"sandbox policy must be strict or allow_weak, not {mode!r}")
    _POLICY["mode"] = mode


def policy() -> str:
    return _POLICY["mode"]


def choose(allow_weak: bool | None = None, mode: str | None = None) -> str:
    """"bwrap" or "weak"; raises SandboxUnavailable when strict isolation is required and missing.
    `mode="weak"` asks for the weak mode outright (tests of it; never a default)."""
    if mode == "weak":
        return "weak"
    ok, why = strict_available()
    if ok:
        return "bwrap"
    weak_ok = policy() == "allow_weak" if allow_weak is None else allow_weak
    if not weak_ok:
        raise SandboxUnavailable(f"code sandbox: {why}. Install it, or accept weaker isolation "
                                 "(the host filesystem stays visible) with `execution.sandbox: allow_weak`")
    if why not in _warned:
        _warned.add(why)
        from qwen3_recipe.console import console
        console(stderr=True).print(f"[yellow]warning[/]: code sandbox runs with weak isolation: {why}",
                                   markup=True, soft_wrap=True)
    return "weak"
