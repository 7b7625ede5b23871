"""A per-user cache of file content digests, so an unchanged large input is hashed once, not at every plan.

One JSON file (`<cache>/qwen3-recipe/digests/files.json`) maps a file's resolved path to the size,
mtime_ns and inode it had when hashed, and its digest; an entry answers only while all three are
unchanged. It is written whole (tmp + os.replace: a reader never sees half a file), merged first
with what is on disk, so two processes writing at once lose at most the other's newest entries. A
file that does not parse is ignored and rebuilt. QWEN3_RECIPE_NO_CACHE=1 bypasses it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from qwen3_recipe.compiler import user_cache

FORMAT = 1
FILE = "files.json"
# A file written again within the same mtime tick keeps its stamp (ticks are coarse on some file
# systems: 2 s on FAT, 1 s on ext3/HFS+, a jiffy on ext4), so only digests of files already this old
# when stat'ed are kept: a later write then shows as a new mtime.
STABLE_S = 2.0
MAX_ENTRIES = 50_000  # the oldest entries go first; a lost entry costs one rehash

Stamp = tuple[int, int, int]  # size, mtime_ns, inode


class _State:
    def __init__(self) -> None:
        self.path: Path | None = None  # the file `entries` was read from
        self.entries: dict[str, list] = {}
        self.pending: dict[str, list] = {}


_state = _State()


def _file() -> Path:
    return user_cache.folder("digests") / FILE


def _read(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) and data.get("format") == FORMAT else None
    return entries if isinstance(entries, dict) else {}


def _entries() -> dict[str, list]:
    path = _file()
    if _state.path != path:  # first use, or the cache was moved (QWEN3_RECIPE_CACHE)
        _state.path, _state.entries, _state.pending = path, _read(path), {}
    return _state.entries


def lookup(path: str, stamp: Stamp) -> str | None:
    if not user_cache.enabled():
        return None
    entry = _entries().get(path)
    if isinstance(entry, list) and len(entry) == 4 and entry[:3] == list(stamp) and isinstance(entry[3], str):
        return entry[3]
    return None


def remember(path: str, stamp: Stamp, digest: str, stat_time: float) -> None:
    """Keeps `digest` for the next process, unless the file was modified under STABLE_S before `stat_time`."""
    if not user_cache.enabled() or stat_time - stamp[1] / 1e9 < STABLE_S:
        return
    entry = [*stamp, digest]
    _entries()[path] = entry
    _state.pending[path] = entry


def flush() -> None:
    """Writes what `remember` kept since the last flush."""
    if not _state.pending or _state.path is None:
        return
    entries = _read(_state.path)  # what other processes wrote since we read it
    for path, entry in _state.pending.items():
        entries.pop(path, None)  # re-inserted: the newest entries are the last to be trimmed
        entries[path] = entry
    for old in list(entries)[:max(0, len(entries) - MAX_ENTRIES)]:
        del entries[old]
    _state.entries, _state.pending = entries, {}
    tmp = _state.path.with_name(f"{FILE}.{os.getpid()}.tmp")
    try:
        _state.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"format": FORMAT, "entries": entries}, separators=(",", ":")))
        os.replace(tmp, _state.path)
    except OSError:  # a read-only home is no reason to fail a plan
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def reset() -> None:
    """Forgets what this process read and kept (tests; the file on disk stays)."""
    global _state
    _state = _State()
