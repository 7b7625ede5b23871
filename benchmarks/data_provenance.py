"""Issue 3 benchmarks (a) and (c) on one generated corpus.

(a) the same datatrove pipeline (reader -> Gopher repetition -> Gopher quality -> FineWeb quality
    -> writer) with and without our provenance; target <= 1.05x wall time.
(c) "drops per filter per source" answered by SQL over provenance.duckdb vs by scanning
    datatrove's exclusion JSONL files (the datatrove-native way); target >= 50x faster.

Run: .venv/bin/python benchmarks/data_provenance.py [--docs N] [--repeats R]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from corpora import german, prose  # noqa: E402


def make_corpus(folder: Path, docs: int, files: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    handles = [open(folder / f"part-{i:03d}.jsonl", "w") for i in range(files)]
    for i in range(docs):
        kind = rng.random()
        text = (prose(rng, 12) if kind < 0.7 else german(rng) if kind < 0.85
                else "\n".join(["Buy now, best prices, free shipping today."] * 20))
        handles[i % files].write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    for h in handles:
        h.close()


def filters():
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
    return [("gopher_repetition", GopherRepetitionFilter), ("gopher_quality", GopherQualityFilter),
            ("fineweb_quality", FineWebQualityFilter)]


def run(pipeline, tasks: int, logs: Path) -> float:
    from datatrove.executor import LocalPipelineExecutor
    started = time.perf_counter()
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(logs)).run()
    return time.perf_counter() - started


def plain(corpus: Path, out: Path, exclusions: bool):
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    steps = [JsonlReader(str(corpus), default_metadata={"source": "web"})]
    for name, cls in filters():
        writer = JsonlWriter(str(out / "excluded" / name)) if exclusions else None
        steps.append(cls(exclusion_writer=writer))
    return steps + [JsonlWriter(str(out / "kept"))]


def traced(corpus: Path, out: Path):
    from datatrove.pipeline.writers import JsonlWriter

    from qwen3_recipe.data.readers import JsonlSourceReader
    from qwen3_recipe.data.trace import Traced
    prov = str(out / "provenance")
    steps = [JsonlSourceReader(str(corpus), source="web", job="data.web", prov_dir=prov)]
    for i, (name, cls) in enumerate(filters(), start=1):
        steps.append(Traced(cls(), i, name, "data.web", prov))
    return steps + [JsonlWriter(str(out / "kept"))]


def scan_exclusions(out: Path) -> Counter:
    counts: Counter = Counter()
    for f in (out / "excluded").rglob("*.jsonl.gz"):
        step = f.parent.name
        with gzip.open(f, "rt") as fh:
            for line in fh:
                doc = json.loads(line)
                counts[(step, doc["metadata"].get("source"))] += 1
    return counts


def main() -> None:
    import duckdb

    import qwen3_recipe.data  # noqa: F401 (quiet task logs)
    from qwen3_recipe.provenance.database import build_database
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-prov-"))
    try:
        corpus = work / "corpus"
        make_corpus(corpus, args.docs, args.files)
        run(plain(corpus, work / "warm", False), args.files, work / "warm-logs")  # spaCy, caches
        times = {"plain": [], "provenance": []}
        for r in range(args.repeats):
            times["plain"].append(run(plain(corpus, work / f"p{r}", False), args.files, work / f"pl{r}"))
            times["provenance"].append(run(traced(corpus, work / f"t{r}"), args.files, work / f"tl{r}"))
        ratio = min(times["provenance"]) / min(times["plain"])

        excl = work / "excl"
        run(plain(corpus, excl, True), args.files, work / "excl-logs")
        run_dir = work / "t0" / "run"
        (run_dir / "jobs" / "data.web").mkdir(parents=True)
        shutil.move(str(work / "t0" / "provenance"), str(run_dir / "jobs" / "data.web" / "provenance"))
        db = build_database(run_dir)
        sql = ("select step, source, count(*) from decisions where decision = 'dropped' "
               "and step <> 'read' group by all")
        started = time.perf_counter()
        scanned = scan_exclusions(excl)
        scan_s = time.perf_counter() - started
        with duckdb.connect(str(db), read_only=True) as con:
            con.sql(sql).fetchall()  # warm
            started = time.perf_counter()
            answered = {(s, src): n for s, src, n in con.sql(sql).fetchall()}
            sql_s = time.perf_counter() - started
        print(json.dumps({
            "docs": args.docs, "plain_s": round(min(times["plain"]), 3),
            "provenance_s": round(min(times["provenance"]), 3), "overhead_ratio": round(ratio, 3),
            "target_overhead": 1.05, "scan_exclusions_s": round(scan_s, 4), "sql_s": round(sql_s, 5),
            "sql_speedup": round(scan_s / sql_s, 1), "target_speedup": 50,
            "same_answer": dict(scanned) == answered}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
