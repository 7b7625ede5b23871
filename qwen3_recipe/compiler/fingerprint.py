"""Fingerprints: what a job computes (config + input data + parents), never how or where.

As in sqlmesh, metadata (descriptions, comments, execution resources, estimates) stays out, so
editing it does not rerun anything; a parent's fingerprint is folded into its children's. Local
input files count by their whole content (xxh3-128; digests cached by path, size, mtime and inode).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import xxhash

from qwen3_recipe.compiler import digest_cache

METADATA_KEYS = frozenset({"description", "expected_tokens"})  # documentation; an estimate's input
CHUNK = 8 * 2**20
_file_cache: dict[tuple[str, int, int, int], str] = {}  # (resolved path, size, mtime_ns, inode) -> digest


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
    """Content hash of a local data file or folder: every byte, so an edit anywhere changes it.

    Fast on re-plans: a file's digest is reused while its resolved path, size, mtime and inode are
    unchanged, within this process and, through the per-user digest cache, across processes.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        value = digest([[str(f.relative_to(path)), _one_file(f)] for f in files])
    else:
        value = _one_file(path)
    digest_cache.flush()
    return value


def _one_file(path: Path) -> str:
    resolved = str(path.resolve())
    stat_time = time.time()
    stamp = _stamp(path.stat())
    key = (resolved, *stamp)
    value = _file_cache.get(key) or digest_cache.lookup(resolved, stamp)
    if value is None:
        value = _content_hash(path)
        if _stamp(path.stat()) != stamp:
            return value  # changed while read: the digest may mix old and new bytes, so it is not kept
        digest_cache.remember(resolved, stamp, value, stat_time)
    _file_cache[key] = value
    return value


def _stamp(st: os.stat_result) -> digest_cache.Stamp:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _content_hash(path: Path) -> str:
    """xxh3-128 of the whole file, read in large chunks into one buffer (GB/s: page cache or disk bound)."""
    hasher = xxhash.xxh3_128()
    with path.open("rb", buffering=0) as fh:
        buf = bytearray(min(CHUNK, max(1, os.fstat(fh.fileno()).st_size)))  # small files: a small buffer
        view = memoryview(buf)
        while n := fh.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def job_fingerprint(kind: str, config: Any, inputs: dict[str, str], parents: dict[str, str]) -> str:
    return digest({"kind": kind, "config": strip_metadata(config), "inputs": inputs,
                   "parents": parents})
