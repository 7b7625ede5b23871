"""Each job's engine output in its own file, `jobs/<job>/job.log`. While a job runs, this process's
stdout and stderr file descriptors point at the log, so whatever the engines print - Python logging
(vLLM, torchtitan, datatrove's loguru), warnings, tqdm bars, C++ TORCH_WARN lines, and the output of
child processes started meanwhile (vLLM servers, torch workers) - lands there, and the terminal keeps
our own lines: console.py writes to the terminal streams kept here. `verbose` tees the log to the
terminal as well. The ground floor, like console.py: only the stdlib."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

LOG_FILE = "job.log"
_state: dict = {}  # "out", "err": the terminal's text streams; "log": the file, while a job's output is redirected


def terminal_stream(stderr: bool = False):
    """Where our own output goes while a job's output is redirected (None: not redirected)."""
    return _state.get("err" if stderr else "out")


def current_log() -> str | None:
    """The log the running job writes to: datatrove's worker processes, forked from a server started
    by an earlier job, point their output at it (launch/executors.py)."""
    return _state.get("log")


def point_output_at(log: str) -> None:
    """In a worker process: stdout and stderr to `log` (appending)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _terminal(stream, fd: int, saved: int):
    """A text stream on the terminal: a new one on the saved descriptor when `stream` writes to `fd`,
    else `stream` itself (a test's capture, which never wrote to the descriptor)."""
    try:
        own = stream.fileno() == fd
    except (AttributeError, OSError, ValueError):
        own = False
    if not own:
        return stream, False
    return os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                     errors="replace"), True


def _tee(source: int, sinks: tuple[int, ...]) -> None:
    """Copy until every writer has closed; the descriptors are the thread's own (it may outlive the job)."""
    while chunk := os.read(source, 65536):
        for sink in sinks:
            with contextlib.suppress(OSError):
                os.write(sink, chunk)
    for f in (source, *sinks):
        os.close(f)


@contextlib.contextmanager
def job_output(log: Path, verbose: bool = False):
    """Run the body with fds 1 and 2 on `log` (and, verbose, on the terminal too); restored after,
    whatever happens. Not nested: a job's output has one place."""
    if _state:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = (os.dup(1), os.dup(2))
    out, own_out = _terminal(sys.stdout, 1, saved[0])
    err, own_err = _terminal(sys.stderr, 2, saved[1])
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    tee = None
    target = fd
    if verbose:  # the engines' lines on the terminal, and all of them in the log still
        read, target = os.pipe()
        tee = threading.Thread(target=_tee, args=(read, (os.dup(fd), os.dup(saved[1]))), daemon=True)
        tee.start()
    os.dup2(target, 1)
    os.dup2(target, 2)
    _state.update(out=out, err=err, log=str(log))
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        _state.clear()
        if tee is not None:
            os.close(target)
            tee.join(timeout=5)  # a child still holding the pipe keeps it open: don't wait on it
        for stream, own in ((out, own_out), (err, own_err)):
            if own:
                stream.close()
        for f in (fd, *saved):
            os.close(f)
