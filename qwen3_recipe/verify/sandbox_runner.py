"""The first code that runs inside a sandbox (its source is passed to `python -I -S -c`, after
wire.py's). It drops to the sandbox's uid, applies the limits, compiles the candidate, then either

- `cases`: runs the program as `__main__` once per stdin input, each in a forked child, and
  reports each child's exit, output and exception; whatever a run left behind is killed
  before the next one starts; or
- `serve`: executes the program once as a module and answers calls to its functions over a
  pipe (`{"id", "call", "args"}` -> `{"id", "ok"|"raise"|"exit"}`), values as wire data.

Config is JSON in argv[1]; requests and replies are JSON lines on the fds it names.
"""
import json as _json
import os as _os
import resource as _resource
import signal as _signal
import sys as _sys
import time as _time

_cfg = _json.loads(_sys.argv[1])
_out = _cfg["reply_fd"]


def _send(msg):
    data = dumps(msg)  # noqa: F821 (wire.py precedes this source)
    while data:
        data = data[_os.write(_out, data):]


if _cfg.get("uid") is not None and _os.geteuid() == 0:
    _os.setgroups([])
    _os.setresgid(_cfg["uid"], _cfg["uid"], _cfg["uid"])
    _os.setresuid(_cfg["uid"], _cfg["uid"], _cfg["uid"])
net = "bwrap" if _cfg["isolation"] == "bwrap" else "guard"
if _cfg["isolation"] == "weak":
    import ctypes
    import socket
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        if _libc.unshare(0x40000000) == 0:
            net = "netns+guard"
        elif _libc.unshare(0x10000000 | 0x40000000) == 0:
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
_unlimited = []
for _r, _v in ((_resource.RLIMIT_AS, _cfg["mem"]), (_resource.RLIMIT_FSIZE, _cfg["fsize"]),
               (_resource.RLIMIT_NPROC, _cfg["nproc"]), (_resource.RLIMIT_CORE, 0)):
    try:
        _resource.setrlimit(_r, (_v, _v))
    except (ValueError, OSError):
        _unlimited.append(_r)
_sys.path[:] = [p for p in _sys.path if p] + _cfg.get("site", [])
_sys.argv = ["prog.py"]
with open(_cfg["stdins"], encoding="utf-8") as _f:
    _stdins = _json.load(_f)
try:
    with open(_cfg["prog"], encoding="utf-8") as _f:
        _code = compile(_f.read(), "prog.py", "exec", dont_inherit=True)
except BaseException as _e:  # SyntaxError, ValueError, and MemoryError/RecursionError on pathological code
    _send({"compiled": False, "error": type(_e).__name__, "msg": str(_e)[:500], "net": net})
    _os._exit(0)
_send({"compiled": True, "net": net, "uid": _os.getuid(), "unlimited": _unlimited})


def _cpu_limit():
    try:
        _resource.setrlimit(_resource.RLIMIT_CPU, (_cfg["cpu"], _cfg["cpu"] + 1))
    except (ValueError, OSError):
        pass


def _run_case(k, stdin_text):
    """Fork, run the program as __main__ on `stdin_text`, reap, kill leftovers."""
    paths = ["%s/.case-%d.%s" % (_cfg["tmp"], k, s) for s in ("in", "out", "err")]
    with open(paths[0], "w", encoding="utf-8") as f:
        f.write(stdin_text)
    fds = [_os.open(paths[0], _os.O_RDONLY)] + [
        _os.open(p, _os.O_WRONLY | _os.O_CREAT | _os.O_TRUNC, 0o600) for p in paths[1:]]
    note_r, note_w = _os.pipe()
    t0 = _time.monotonic()
    pid = _os.fork()
    if pid == 0:
        for i, fd in enumerate(fds):
            _os.dup2(fd, i)
        _os.close(_out)
        _os.close(note_r)
        _cpu_limit()
        _os.setsid()
        try:
            exec(_code, {"__name__": "__main__", "__file__": "prog.py", "__builtins__": __builtins__})
        except SystemExit:
            raise
        except BaseException as e:
            _os.write(note_w, type(e).__name__.encode()[:100])
            raise
        _sys.exit(0)
    _os.close(note_w)
    for fd in fds:
        _os.close(fd)
    deadline, status, timed_out = t0 + _cfg["timeout"], None, False
    while status is None:
        done, st = _os.waitpid(pid, _os.WNOHANG)
        if done:
            status = st
        elif _time.monotonic() > deadline:
            timed_out = True
            _os.kill(pid, _signal.SIGKILL)
            status = _os.waitpid(pid, 0)[1]
        else:
            _time.sleep(0.002)
    elapsed = _time.monotonic() - t0
    _kill_leftovers()
    exc = _os.read(note_r, 100).decode(errors="replace") or None
    _os.close(note_r)
    res = {"case": k, "elapsed": round(elapsed, 4), "timeout": timed_out, "exc": exc,
           "rc": _os.waitstatus_to_exitcode(status)}
    for name, path, limit in (("stdout", paths[1], _cfg["max_output"]), ("stderr", paths[2], 4000)):
        with open(path, "rb") as f:
            if name == "stderr":
                f.seek(max(0, _os.path.getsize(path) - limit))
            res[name] = f.read(limit).decode("utf-8", errors="replace")
    for p in paths:
        _os.unlink(p)
    return res


def _kill_leftovers():
    """Every process this uid can signal but this one: what a run forked or setsid'd."""
    if _cfg["isolation"] == "bwrap":
        try:
            _os.kill(-1, _signal.SIGKILL)
        except OSError:
            pass


def _serve():
    _zero = _os.open("/dev/null", _os.O_RDONLY)
    _os.dup2(_zero, 0)
    _os.close(_zero)
    _null = _os.open("/dev/null", _os.O_WRONLY)
    _os.dup2(_null, 1)
    _os.dup2(_null, 2)
    _os.close(_null)
    ns = {"__name__": "solution", "__file__": "prog.py", "__builtins__": __builtins__}
    _cpu_limit()
    try:
        exec(_code, ns)
    except BaseException as e:
        kind = "exit" if isinstance(e, SystemExit) else "raise"
        _send({"ready": False, kind: type(e).__name__, "msg": str(e)[:500]})
        _os._exit(0)
    names = sorted(n for n, v in ns.items() if callable(v) and not n.startswith("__"))
    _send({"ready": True, "names": names})
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = _os.read(_cfg["request_fd"], 1 << 16)
            if not chunk:
                _os._exit(0)
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        req = _json.loads(line)
        try:
            target = req["call"].split(".")
            fn = ns[target[0]]
            if len(target) == 2:  # LeetCode style: Solution().method, a fresh instance per call
                fn = getattr(fn(), target[1])
            value = fn(*decode(req["args"]), **decode(req.get("kwargs") or {"d": []}))  # noqa: F821
            reply = {"id": req["id"], "ok": encode(value)}  # noqa: F821
        except SystemExit as e:
            reply = {"id": req["id"], "exit": "SystemExit", "msg": str(e)[:200]}
        except BaseException as e:
            reply = {"id": req["id"], "raise": type(e).__name__, "msg": str(e)[:500]}
        _send(reply)


if _cfg["mode"] == "serve":
    _serve()
else:
    for _k, _stdin in enumerate(_stdins):
        _send(_run_case(_k, _stdin))
    _send({"finished": True})
_os._exit(0)
