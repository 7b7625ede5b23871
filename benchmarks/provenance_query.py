"""Issue 3 benchmark (c) at scale: "drops per filter per source" from provenance.duckdb vs from
datatrove's exclusion files, for one run's worth of decisions.

Both sides are written from the same seeded decisions: the exclusion side by datatrove's own
JsonlWriter (each dropped document with its text and `filter_reason`, what `exclusion_writer=`
produces), the provenance side by our ShardRecorder (the rows `Traced` writes). Running the real
filters over this many documents would take an hour on 2 cores; data_provenance.py does that at
small scale and checks the two answers agree.
Run: .venv/bin/python benchmarks/provenance_query.py [--docs N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

STEPS = ["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"]
SOURCES = ["web", "code", "math"]


def main() -> None:
    from datatrove.data import Document
    from datatrove.pipeline.writers import JsonlWriter

    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.provenance.recorder import ShardRecorder

    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--text-bytes", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(0)
    words = [f"word{i}" for i in range(5000)]
    work = Path(tempfile.mkdtemp(prefix="bench-query-"))
    try:
        run = work / "run"
        writers = {s: JsonlWriter(str(work / "excluded" / s)) for s in STEPS}
        recorders = {s: ShardRecorder(run / "jobs/data.all/provenance", "data.all", f"{i:02d}-{s}", 0)
                     for i, s in enumerate(STEPS, start=1)}
        for i in range(args.docs):
            source = SOURCES[i % 3]
            for index, step in enumerate(STEPS, start=1):
                dropped = rng.random() < 0.08
                rec = recorders[step]
                rec.add("decisions", step_index=index, step=step, source=source, doc_id=f"{source}/{i}",
                        decision="dropped" if dropped else "kept", reason=f"{step}_reason" if dropped else None,
                        details=None)
                if dropped:
                    text = " ".join(rng.choices(words, k=args.text_bytes // 9))
                    doc = Document(text=text, id=f"{source}/{i}",
                                   metadata={"source": source, "filter_reason": f"{step}_reason"})
                    writers[step].write(doc, rank=0)
                    break
        for w in writers.values():
            w.close()
        for r in recorders.values():
            r.close()
        db = build_database(run)

        started = time.perf_counter()
        scanned: Counter = Counter()
        for f in (work / "excluded").rglob("*.jsonl.gz"):
            with gzip.open(f, "rt") as fh:
                for line in fh:
                    doc = json.loads(line)
                    scanned[(f.parent.name, doc["metadata"]["source"])] += 1
        scan_s = time.perf_counter() - started

        import duckdb
        sql = "select step, source, count(*) from decisions where decision = 'dropped' group by all"
        started = time.perf_counter()
        with duckdb.connect(str(db), read_only=True) as con:  # includes opening the database
            answered = {(s, src): n for s, src, n in con.sql(sql).fetchall()}
        sql_s = time.perf_counter() - started
        excluded_mb = sum(f.stat().st_size for f in (work / "excluded").rglob("*")) / 2**20
        print(json.dumps({"docs": args.docs, "dropped": sum(scanned.values()),
                          "exclusion_files_mb": round(excluded_mb, 1), "scan_s": round(scan_s, 3),
                          "sql_s": round(sql_s, 4), "speedup": round(scan_s / sql_s, 1), "target": 50,
                          "same_answer": dict(scanned) == answered}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
