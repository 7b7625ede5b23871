"""Shared test helpers: the repo root, in-process CLI calls, recipe files in tmp dirs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def _user_outputs() -> dict[str, tuple[int, int]]:
    """The checkout's own run directories (what `make demo` fills): path -> (size, mtime_ns)."""
    runs = REPO / "runs"
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns) for f in runs.rglob("*") if f.is_file()} \
        if runs.is_dir() else {}


def pytest_sessionstart(session):
    session.config._user_outputs = _user_outputs()


def pytest_sessionfinish(session, exitstatus):
    """No test writes the checkout's runs/ (issue 15): each uses its own run directory, so `make demo`
    then `make test` passes, and so does `make test` twice. A write there fails the run. (One test
    reads it: test_end_to_end checks a copy of the demo's run when that run is complete and current.)"""
    before, after = getattr(session.config, "_user_outputs", {}), _user_outputs()
    touched = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if touched:
        print(f"\nerror: tests changed the checkout's runs/ ({len(touched)} files, e.g. {touched[0]}); "
              "give each test its own run directory (-o tmp_path/...)", file=sys.stderr)
        session.exitstatus = 1


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/ files")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def run_cli(*args: str, env: dict | None = None, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh process."""
    return subprocess.run([sys.executable, "-m", "qwen3_recipe.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


_SUMMARY: list[str] = []


@pytest.fixture
def summary(request):
    """Lines a test wants in the run's output even when it passes (pytest captures print):
    shown in a section at the end of the session. They travel as the test's user properties, so a
    pytest-xdist worker's lines reach the controller that prints them."""
    lines: list[str] = []
    yield lines
    request.node.user_properties.extend(("measured", line) for line in lines)


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _SUMMARY.extend(value for key, value in report.user_properties if key == "measured")


def pytest_terminal_summary(terminalreporter):
    if _SUMMARY:
        terminalreporter.section("measured")
        for line in _SUMMARY:
            terminalreporter.write_line(line)


def query(run: Path, sql: str) -> list[tuple]:
    """Rows of a SQL query on a run's provenance database."""
    import duckdb
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def metric(run: Path, stage: str, name: str) -> dict[int, float]:
    """A stage's per-step metric from provenance's train_steps: {step: value}."""
    return dict(query(run, f"select step, value from train_steps where stage = '{stage}' and metric = '{name}' "
                           "order by step"))


def processes_of(path: Path) -> list[int]:
    """Processes whose command line names `path` (a stage's trainers: its trl_spec.json; its rollout servers: its
    rollout folder)."""
    out = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def kill_when(proc: subprocess.Popen, ready, *leftovers: Path, timeout: float = 600) -> None:
    """SIGKILL `proc` (a `run` in the background) once `ready()` holds, then wait for the processes naming any of
    `leftovers` to go with it (PR_SET_PDEATHSIG); fails if `proc` ends first or one of them outlives it."""
    import signal
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the stage ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(300):
        if not any(processes_of(p) for p in leftovers):
            break
        time.sleep(0.1)
    for p in leftovers:
        assert not processes_of(p), f"a process naming {p} outlived the killed run"


def rows_in(path: Path) -> int:
    """Lines in a JSON-lines file (0 when it is not there yet)."""
    return len(path.read_text().splitlines()) if path.exists() else 0
