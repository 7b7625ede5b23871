"""Local inputs are fingerprinted by their whole content; digests are reused only while a file's stamp holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen3_recipe.compiler import digest_cache, fingerprint
from qwen3_recipe.compiler.fingerprint import file_digest

MiB = 2**20
OLD = time.time() - 3600  # an mtime old enough for the persistent cache to keep the digest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN3_RECIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QWEN3_RECIPE_NO_CACHE", raising=False)
    forget_in_process()
    yield tmp_path / "cache" / "digests" / digest_cache.FILE
    forget_in_process()


def forget_in_process() -> None:
    """As a new process starts: the in-process dict empty, the on-disk cache kept."""
    fingerprint._file_cache.clear()
    digest_cache.reset()


def write(path: Path, data: bytes, mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def count_hashes(monkeypatch) -> list[Path]:
    hashed: list[Path] = []
    real = fingerprint._content_hash
    monkeypatch.setattr(fingerprint, "_content_hash", lambda p: hashed.append(p) or real(p))
    return hashed


def test_one_byte_in_the_middle_of_100_MiB_changes_the_digest(tmp_path, monkeypatch):
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(100):
            fh.write(os.urandom(MiB))
    os.utime(big, (OLD, OLD))
    before = file_digest(big)
    st = big.stat()
    with big.open("r+b") as fh:  # same size, and the mtime set back below: only the content differs
        fh.seek(50 * MiB + 12345)
        old = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([old[0] ^ 1]))
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert big.stat().st_size == st.st_size and big.stat().st_mtime_ns == st.st_mtime_ns
    forget_in_process()
    monkeypatch.setenv("QWEN3_RECIPE_NO_CACHE", "1")  # the same stamp: a cache would rightly answer the old digest
    assert file_digest(big) != before


def test_a_new_mtime_or_size_or_inode_is_rehashed(tmp_path, monkeypatch):
    f = write(tmp_path / "a.jsonl", b"x" * 1000)
    first = file_digest(f)
    hashed = count_hashes(monkeypatch)
    assert file_digest(f) == first and hashed == []  # same stamp: served from memory
    write(f, b"y" * 1000)  # same size and mtime, new content: the cache may not notice (documented)...
    os.utime(f, (OLD + 1, OLD + 1))  # ...but a new mtime it does
    assert file_digest(f) != first and len(hashed) == 1
    write(f, b"x" * 1001, OLD + 1)  # a new size, the same mtime
    longer = file_digest(f)
    assert longer != first and len(hashed) == 2
    forget_in_process()  # a new process: the on-disk entry holds (1001, OLD + 1, this inode)
    replacement = write(tmp_path / "b.jsonl", b"z" * 1001, OLD + 1)
    os.replace(replacement, f)  # same size and mtime, another inode (e.g. `cp -p` then `mv`)
    assert file_digest(f) != longer and len(hashed) == 3


def test_a_folder_digest_changes_when_one_file_inside_changes(tmp_path):
    folder = tmp_path / "shards"
    for i in range(5):
        write(folder / f"sub{i % 2}" / f"part-{i}.jsonl", json.dumps({"id": i, "text": "t" * 100}).encode())
    before = file_digest(folder)
    write(folder / "sub1" / "part-3.jsonl", json.dumps({"id": 3, "text": "u" * 100}).encode(), OLD + 5)
    after = file_digest(folder)
    assert after != before
    write(folder / "sub1" / "part-3.jsonl", json.dumps({"id": 3, "text": "t" * 100}).encode(), OLD + 9)
    assert file_digest(folder) == before  # content, not stamps, decides the digest
    write(folder / "extra.jsonl", b"{}", OLD)
    assert file_digest(folder) not in (before, after)


def test_the_on_disk_cache_serves_a_new_process(tmp_path, monkeypatch, isolated_cache):
    f = write(tmp_path / "data.jsonl", os.urandom(3 * MiB))
    first = file_digest(f)
    assert isolated_cache.exists()
    forget_in_process()
    hashed = count_hashes(monkeypatch)
    assert file_digest(f) == first and hashed == []
    monkeypatch.setenv("QWEN3_RECIPE_NO_CACHE", "1")
    forget_in_process()
    assert file_digest(f) == first and hashed == [f]


def test_the_cache_is_shared_across_real_processes(tmp_path, isolated_cache):
    f = write(tmp_path / "data.jsonl", b"row\n" * 1000)
    code = ("import sys; from pathlib import Path; from qwen3_recipe.compiler import fingerprint as fp\n"
            "hashed = []; real = fp._content_hash; fp._content_hash = lambda p: hashed.append(p) or real(p)\n"
            "print(fp.file_digest(Path(sys.argv[1])), len(hashed))")
    env = {**os.environ, "QWEN3_RECIPE_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, env=env, check=True)
            .stdout.split() for _ in range(2)]
    assert runs[0][0] == runs[1][0] and [r[1] for r in runs] == ["1", "0"]


def test_a_file_written_just_now_is_not_kept_on_disk(tmp_path, monkeypatch, isolated_cache):
    f = write(tmp_path / "fresh.jsonl", b"abc", mtime=time.time())  # could change again within its mtime tick
    file_digest(f)
    assert not isolated_cache.exists()
    forget_in_process()
    hashed = count_hashes(monkeypatch)
    file_digest(f)
    assert hashed == [f]


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[1, 2]", b'{"format": 1, "entries": {"x": 5}}',
                                     b'{"format": 1, "entries": []}', b"\xff\xfe"])
def test_a_corrupt_cache_file_is_ignored_and_rebuilt(tmp_path, monkeypatch, isolated_cache, garbage):
    f = write(tmp_path / "data.jsonl", b"row\n" * 100)
    expected = file_digest(f)
    isolated_cache.write_bytes(garbage)
    forget_in_process()
    hashed = count_hashes(monkeypatch)
    assert file_digest(f) == expected and hashed == [f]
    forget_in_process()
    assert file_digest(f) == expected and hashed == [f]  # rebuilt: the next process hashes nothing


def test_a_corrupt_entry_for_the_file_itself_is_a_miss(tmp_path, monkeypatch, isolated_cache):
    f = write(tmp_path / "data.jsonl", b"row\n" * 100)
    expected = file_digest(f)
    data = json.loads(isolated_cache.read_text())
    data["entries"][str(f.resolve())] = ["size", None]
    isolated_cache.write_text(json.dumps(data))
    forget_in_process()
    hashed = count_hashes(monkeypatch)
    assert file_digest(f) == expected and hashed == [f]


def test_two_writers_keep_each_others_entries(tmp_path, isolated_cache):
    a, b = write(tmp_path / "a.jsonl", b"a"), write(tmp_path / "b.jsonl", b"b")
    file_digest(a)  # process 1 has read the cache...
    forget_in_process()
    digest_cache._entries()  # ...process 2 reads it (holding only a), then process 1 has written more
    other = json.loads(isolated_cache.read_text())
    other["entries"]["/elsewhere/c.jsonl"] = [1, 2, 3, "c" * 32]
    isolated_cache.write_text(json.dumps(other))
    file_digest(b)
    entries = json.loads(isolated_cache.read_text())["entries"]
    assert {str(a.resolve()), str(b.resolve()), "/elsewhere/c.jsonl"} <= set(entries)
    assert not list(isolated_cache.parent.glob("*.tmp"))


def test_a_read_only_cache_folder_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("QWEN3_RECIPE_CACHE", str(blocker))  # digests/ cannot be created under a file
    forget_in_process()
    f = write(tmp_path / "data.jsonl", b"row\n")
    assert file_digest(f) == file_digest(f)


def test_the_plan_cache_folder_is_unchanged_and_digests_sit_beside_it(tmp_path, monkeypatch):
    from qwen3_recipe.compiler import plan_cache, user_cache
    assert plan_cache.cache_dir() == tmp_path / "cache"  # QWEN3_RECIPE_CACHE has always named it
    assert user_cache.folder("digests") == tmp_path / "cache" / "digests"
    monkeypatch.delenv("QWEN3_RECIPE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert plan_cache.cache_dir() == tmp_path / "xdg" / "qwen3-recipe" / "plans"
    assert user_cache.folder("digests") == tmp_path / "xdg" / "qwen3-recipe" / "digests"
