"""Issue 3 benchmark (c), made like-for-like (issue 18): "drops per filter per source" for one run's
worth of decisions, answered five ways over the same decisions:

- python_scan:  `json.loads` over datatrove's exclusion files (what a user without us writes first);
- duckdb_json:  DuckDB's own `read_json` over the same exclusion files, reading only the two fields
                the answer needs (no database of ours, one SQL statement);
- duckdb_parquet: DuckDB's `read_parquet` over the exclusion files as datatrove's `ParquetWriter` writes
                them (`exclusion_writer=ParquetWriter(...)`: columnar, so the text column is never read);
- shards:       DuckDB `read_parquet` over our provenance shards (no database built);
- database:     our `provenance.duckdb` (connection opened included), whose build is timed apart:
                build once, query many; the break-even, per baseline, is the number of queries after
                which build + queries costs less than asking that baseline each time.

The strongest baseline is whichever answers fastest from datatrove's files on the day (`fastest_baseline`);
`shards` is our own output without the database (what the build buys, beside it).
datatrove's per-step stats files hold counts per filter, not per source, so they cannot answer this query.

Both inputs are written from the same seeded decisions: the exclusion side by datatrove's own
JsonlWriter (each dropped document with its text and `filter_reason`, what `exclusion_writer=`
produces), the provenance side by our ShardRecorder (the rows `Traced` writes). Running the real
filters over this many documents would take an hour on 2 cores; data_provenance.py does that at
small scale and checks the two answers agree. Sides alternate within each repeat, in one process;
each answer is checked against the others. Prints one JSON line: median and spread per side.
Run: .venv/bin/python benchmarks/provenance_query.py [--docs N] [--repeats R]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recorder, spread  # noqa: E402

STEPS = ["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"]
SOURCES = ["web", "code", "math"]
SQL = "select step, source, count(*) from decisions where decision = 'dropped' group by all"


def write_inputs(work: Path, docs: int, text_bytes: int) -> Path:
    """The exclusion files under work/excluded/<step>/ and the provenance shards of run work/run."""
    from datatrove.data import Document
    from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

    from qwen3_recipe.provenance.recorder import ShardRecorder
    rng = random.Random(0)
    words = [f"word{i}" for i in range(5000)]
    run = work / "run"
    writers = {s: JsonlWriter(str(work / "excluded" / s)) for s in STEPS}
    parquet = {s: ParquetWriter(str(work / "excluded_parquet" / s)) for s in STEPS}
    recorders = {s: ShardRecorder(run / "jobs/data.all/provenance", "data.all", f"{i:02d}-{s}", 0)
                 for i, s in enumerate(STEPS, start=1)}
    for i in range(docs):
        source = SOURCES[i % 3]
        for index, step in enumerate(STEPS, start=1):
            dropped = rng.random() < 0.08
            recorders[step].add("decisions", step_index=index, step=step, source=source, doc_id=f"{source}/{i}",
                                decision="dropped" if dropped else "kept",
                                reason=f"{step}_reason" if dropped else None, details=None)
            if dropped:
                text = " ".join(rng.choices(words, k=text_bytes // 9))
                doc = Document(text=text, id=f"{source}/{i}",
                               metadata={"source": source, "filter_reason": f"{step}_reason"})
                writers[step].write(doc, rank=0)
                parquet[step].write(doc, rank=0)
                break
    for w in [*writers.values(), *parquet.values()]:
        w.close()
    for r in recorders.values():
        r.close()
    return run


def python_scan(work: Path) -> dict:
    scanned: Counter = Counter()
    for f in (work / "excluded").rglob("*.jsonl.gz"):
        with gzip.open(f, "rt") as fh:
            for line in fh:
                scanned[(f.parent.name, json.loads(line)["metadata"]["source"])] += 1
    return dict(scanned)


def duckdb_json(work: Path) -> dict:
    import duckdb
    files = str(work / "excluded" / "*" / "*.jsonl.gz")
    sql = (f"select regexp_extract(filename, '([^/]+)/[^/]+$', 1), metadata.source, count(*) from read_json('{files}', "
           "columns={'metadata': 'STRUCT(source VARCHAR)'}, format='newline_delimited', filename=true) group by all")
    with duckdb.connect() as con:
        return {(s, src): n for s, src, n in con.sql(sql).fetchall()}


def duckdb_parquet(work: Path) -> dict:
    import duckdb
    files = str(work / "excluded_parquet" / "*" / "*.parquet")
    sql = (f"select regexp_extract(filename, '([^/]+)/[^/]+$', 1), metadata.source, count(*) from "
           f"read_parquet('{files}', filename=true) group by all")
    with duckdb.connect() as con:
        return {(s, src): n for s, src, n in con.sql(sql).fetchall()}


def shards(run: Path) -> dict:
    import duckdb
    files = str(run / "jobs" / "*" / "provenance" / "decisions" / "*.parquet")
    with duckdb.connect() as con:
        return {(s, src): n for s, src, n in con.sql(SQL.replace("from decisions", f"from read_parquet('{files}')"))
                .fetchall()}


def database(db: Path) -> dict:
    import duckdb
    with duckdb.connect(str(db), read_only=True) as con:  # includes opening the database
        return {(s, src): n for s, src, n in con.sql(SQL).fetchall()}


def timed(fn, *args) -> tuple[float, dict]:
    started = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - started, out


def main() -> None:
    from qwen3_recipe.provenance.database import build_database

    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--text-bytes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="write results/3c.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder("3c", args.record)
    work = Path(tempfile.mkdtemp(prefix="bench-query-"))
    try:
        run = write_inputs(work, args.docs, args.text_bytes)
        builds, times = [], {k: [] for k in ("python_scan", "duckdb_json", "duckdb_parquet", "shards", "database")}
        answers = {}
        for r in range(args.repeats):  # every side once per repeat, the order rotating between repeats
            (run / "provenance.duckdb").unlink(missing_ok=True)
            build_s, db = timed(build_database, run)
            builds.append(build_s)
            sides = [("python_scan", python_scan, work), ("duckdb_json", duckdb_json, work),
                     ("duckdb_parquet", duckdb_parquet, work), ("shards", shards, run), ("database", database, db)]
            for name, fn, arg in sides[r % 5:] + sides[:r % 5]:
                t, answers[name] = timed(fn, arg)
                times[name].append(t)
        stat = {k: spread(v, 4) for k, v in {**times, "database_build": builds}.items()}
        med = {k: statistics.median(v) for k, v in {**times, "database_build": builds}.items()}
        baselines = ("python_scan", "duckdb_json", "duckdb_parquet", "shards")
        # the strongest baseline without us: whichever answered fastest from datatrove's files
        fastest = min(("python_scan", "duckdb_json", "duckdb_parquet"), key=med.get)

        def break_even(side: str) -> float | None:  # queries after which build + queries beat the side
            saved = med[side] - med["database"]
            return round(med["database_build"] / saved, 1) if saved > 0 else None
        result = {
            "docs": args.docs, "text_bytes": args.text_bytes, "dropped": sum(answers["python_scan"].values()),
            "repeats": args.repeats,
            "exclusion_files_mb": round(sum(f.stat().st_size for f in (work / "excluded").rglob("*")) / 2**20, 1),
            "exclusion_parquet_mb": round(sum(f.stat().st_size for f in (work / "excluded_parquet").rglob("*"))
                                          / 2**20, 1),
            "sides": stat,
            "fastest_baseline": fastest,
            # per repeat: a baseline's time over the database's (both in the same repeat)
            "database_speedup": {b: spread((x / d for x, d in zip(times[b], times["database"])), 2)
                                 for b in baselines},
            "break_even_queries": {b: break_even(b) for b in baselines},
            "same_answer": all(a == answers["python_scan"] for a in answers.values())}
        print(json.dumps(result))
        recorder.save(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
