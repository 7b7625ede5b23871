"""`plan` with large local inputs: whole-content digests (xxh3-128 + per-user digest cache) vs the old
size + head + tail digest of files over 64 MiB (commit 03819b6, loaded by this script).

The tiny recipe's three pretraining sources are grown to --mib MiB each (their rows repeated, mtime an
hour back: data at rest). Each side runs `plan` in a cold process with its own cache folder:
- first plan, every cache empty: the new side hashes every byte (from the page cache);
- re-plan after a recipe edit (plan cache miss; the digest cache answers): target <= 1.1x the old side;
- re-plan of an unchanged recipe (the plan cache answers: neither side hashes anything).
Also: in-process hashing throughput of file_digest with no cache, next to hashlib's sha256.
Run: .venv/bin/python benchmarks/fingerprint_large_inputs.py [--mib 100] [--repeats 7] [--record]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from record import Recorder, spread  # noqa: E402

OLD_COMMIT = "03819b6"  # the last fingerprint.py with the head + tail digest
SOURCES = ("tiny_web", "tiny_code", "tiny_math")
MiB = 2**20
# Both sides start the CLI the same way; the old one first installs the old fingerprint module, so
# compiler/jobs.py imports its file_digest.
LAUNCH = """
import os, sys, types
old = os.environ.get("BENCH_OLD_FINGERPRINT")
if old:
    import qwen3_recipe.compiler
    module = types.ModuleType("qwen3_recipe.compiler.fingerprint")
    module.__file__ = old
    sys.modules[module.__name__] = module
    exec(compile(open(old).read(), old, "exec"), module.__dict__)
from qwen3_recipe.cli import main
sys.exit(main(sys.argv[1:]))
"""


def make_workspace(root: Path, mib: int) -> list[Path]:
    for name in ("recipes", "datasets_spec", "evals"):
        shutil.copytree(REPO / name, root / name)
    at_rest = time.time() - 3600
    files = []
    for source in SOURCES:
        path = root / "datasets_spec/data" / f"{source}.jsonl"
        rows = path.read_bytes()
        with path.open("wb") as fh:
            for _ in range(-(-mib * MiB // len(rows))):
                fh.write(rows)
        os.utime(path, (at_rest, at_rest))
        files.append(path)
    return files


class Side:
    def __init__(self, name: str, root: Path, old_source: Path | None) -> None:
        self.name, self.root, self.cache = name, root, root / f"cache-{name}"
        self.env = {**os.environ, "QWEN3_RECIPE_CACHE": str(self.cache), "OMP_NUM_THREADS": "1"}
        self.env.pop("QWEN3_RECIPE_NO_CACHE", None)
        if old_source:
            self.env["BENCH_OLD_FINGERPRINT"] = str(old_source)

    def plan(self) -> tuple[float, dict]:
        cmd = [sys.executable, "-c", LAUNCH, "plan", "recipes/tiny.yaml", "--format", "json"]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, check=True)
        return time.perf_counter() - started, json.loads(proc.stdout)


def touch(path: Path) -> None:
    now = time.time()
    os.utime(path, (now, now))  # what an edit does to the plan cache's stamp


def stats(times: list[float]) -> dict:
    return spread(times, 4)


def hashing_throughput(files: list[Path], repeats: int) -> dict:
    os.environ["QWEN3_RECIPE_NO_CACHE"] = "1"  # every byte read and hashed each time
    from qwen3_recipe.compiler import fingerprint
    total = sum(f.stat().st_size for f in files) / MiB
    ours, sha = [], []

    def xxh3() -> None:
        fingerprint._file_cache.clear()
        for f in files:
            fingerprint.file_digest(f)

    def sha256() -> None:
        for f in files:
            h = hashlib.sha256()
            with f.open("rb") as fh:
                while chunk := fh.read(8 * MiB):
                    h.update(chunk)

    for r in range(repeats):  # alternating, the order switching
        sides = [(xxh3, ours), (sha256, sha)]
        for run, out in sides[::-1] if r % 2 else sides:
            started = time.perf_counter()
            run()
            out.append(total / (time.perf_counter() - started))
    return {"mib": round(total), "xxh3_file_digest_mib_s": spread(ours, 0), "sha256_mib_s": spread(sha, 0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=100, help="size of each of the three large inputs")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--record", action="store_true", help="write results/14.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder("14", args.record)
    with tempfile.TemporaryDirectory(prefix="fp-bench-") as tmp:
        root = Path(tmp)
        files = make_workspace(root, args.mib)
        old_source = root / "fingerprint_old.py"
        old_source.write_bytes(subprocess.run(["git", "show", f"{OLD_COMMIT}:qwen3_recipe/compiler/fingerprint.py"],
                                              cwd=REPO, check=True, capture_output=True).stdout)
        sides = [Side("old", root, old_source), Side("new", root, None)]
        recipe = root / "recipes/tiny.yaml"
        for side in sides:  # warm __pycache__ and the page cache
            side.plan()
        times: dict[str, dict[str, list[float]]] = {s.name: {"first": [], "edited": [], "unchanged": []} for s in sides}
        views = {}
        for i in range(args.repeats):
            for side in sides if i % 2 else sides[::-1]:  # alternated, so drift on a shared machine hits both alike
                shutil.rmtree(side.cache, ignore_errors=True)
                touch(recipe)
                elapsed, views[side.name] = side.plan()
                times[side.name]["first"].append(elapsed)
                touch(recipe)
                times[side.name]["edited"].append(side.plan()[0])
                times[side.name]["unchanged"].append(side.plan()[0])
        digests = sides[1].cache / "digests/files.json"
        result = {"inputs": f"{len(files)} x {args.mib} MiB", "repeats": args.repeats,
                  "same_jobs": [j["name"] for j in views["old"]["jobs"]] == [j["name"] for j in views["new"]["jobs"]],
                  "digest_cache_entries": len(json.loads(digests.read_text())["entries"])}
        for case in ("first", "edited", "unchanged"):
            result[case] = {"old": stats(times["old"][case]), "new": stats(times["new"][case]),
                            "ratio": spread((n / o for o, n in zip(times["old"][case], times["new"][case])), 3)}
        result["target_ratio_edited_and_unchanged"] = 1.1
        result["hashing"] = hashing_throughput(files, args.repeats)
    print(json.dumps(result, indent=1))
    recorder.save(result)


if __name__ == "__main__":
    main()
