"""Names that become paths, and the guard on every path the runner writes or deletes.

A job's folder is `<run_dir>/jobs/<job name>`, and job names are built from recipe keys (sources,
mixtures, stages, synth jobs). A key like `../x` would put a job's outputs - and what `start_clean`
deletes - outside the run directory. So names match one pattern (checked with a located error, in
recipe/checks.py), and the places that write or delete check the resolved path (symlinks too)
before they act.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_NAME = re.compile(NAME_PATTERN)


def name_problem(name: object) -> str | None:
    """Why `name` cannot name a source, mixture, stage or job; None when it can."""
    if not isinstance(name, str):
        return f"a name must be text, not {type(name).__name__}"
    if not _NAME.fullmatch(name) or ".." in name:
        return (f"'{name.encode('unicode_escape').decode()}' cannot be a name: names become folder names, so "
                f"they use letters, digits, '_', '.' and '-', start with a letter, digit or '_', and hold no '..'")
    return None


class OutsideRunDir(ValueError):
    """A path the runner was about to write or delete lies outside the run directory."""


def inside_run_dir(run_dir: Path, path: Path) -> Path:
    """`path`, checked to resolve (following symlinks) to somewhere under `run_dir`."""
    root = Path(run_dir).resolve()
    resolved = Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        raise OutsideRunDir(f"refusing to touch {path}: it resolves to {resolved}, outside the run directory {root}")
    return resolved


def job_folder(run_dir: Path, job_dir: str) -> Path:
    """A job's folder (`jobs/<name>`), checked to lie strictly inside the run directory's `jobs/`."""
    folder = Path(run_dir) / job_dir
    if inside_run_dir(run_dir, folder) == (Path(run_dir) / "jobs").resolve():
        raise OutsideRunDir(f"refusing to use {folder} as a job's folder: it is the run's jobs/ folder itself")
    inside_run_dir(Path(run_dir) / "jobs", folder)
    return folder
