"""Fingerprints: what a job computes (config + input data + parents), never how or where.

As in sqlmesh, metadata (descriptions, comments, execution resources, estimates) stays out, so
editing it does not rerun anything; a parent's fingerprint is folded into its children's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

METADATA_KEYS = frozenset({"description", "expected_tokens"})  # documentation; an estimate's input
_FULL_HASH_LIMIT = 64 * 2**20
_file_cache: dict[tuple[str, int, int], str] = {}


def strip_metadata(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_metadata(v) for k, v in value.items() if k not in METADATA_KEYS}
    if isinstance(value, list):
        return [strip_metadata(v) for v in value]
    return value


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:length]


def file_digest(path: Path) -> str:
    """Content hash of a local data file or folder (large files: size + head + tail, to keep plan fast)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return digest([[str(f.relative_to(path)), file_digest(f)] for f in files])
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _file_cache:
        return _file_cache[key]
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        if stat.st_size <= _FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(2**20), b""):
                sha.update(chunk)
        else:
            sha.update(f"size={stat.st_size}".encode())
            sha.update(fh.read(2**20))
            fh.seek(-2**20, os.SEEK_END)
            sha.update(fh.read(2**20))
    _file_cache[key] = sha.hexdigest()[:16]
    return _file_cache[key]


def job_fingerprint(kind: str, config: Any, inputs: dict[str, str], parents: dict[str, str]) -> str:
    return digest({"kind": kind, "config": strip_metadata(config), "inputs": inputs,
                   "parents": parents})
