"""Issue 3 benchmark (a) on generated corpora of one or more sizes, and a check of (c) on real decisions.

(a) the same datatrove pipeline (reader -> Gopher repetition -> Gopher quality -> FineWeb quality
    -> writer) with and without our provenance (our reader and Traced filters writing decision shards);
    target <= 1.05x wall time. Each size: a warm-up run of each side, then `--repeats` pairs, the order
    switching between pairs.
(c) check: "drops per filter per source" from datatrove's exclusion files and from provenance.duckdb agree
    on the largest size's real filter decisions (provenance_query.py times the query sides).

Run: .venv/bin/python benchmarks/data_provenance.py [--docs 1500,3000,8000] [--repeats 3] [--record]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_corpora import generated_corpus as make_corpus  # noqa: E402
from record import Recorder, spread  # noqa: E402


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


def overhead(work: Path, docs: int, files: int, repeats: int) -> dict:
    """(a) at one size: `repeats` pairs of a plain and a traced run, after a warm-up run of each (spaCy,
    pyarrow, the OS cache); which side goes first alternates between pairs, and the ratio is taken per pair
    (both sides of a pair see the same machine), then summarised."""
    corpus = work / f"corpus-{docs}"
    make_corpus(corpus, docs, files)
    run(plain(corpus, work / f"warm-p{docs}", False), files, work / f"warm-pl{docs}")
    run(traced(corpus, work / f"warm-t{docs}"), files, work / f"warm-tl{docs}")
    times = {"plain": [], "provenance": []}
    for r in range(repeats):
        sides = [("plain", lambda: run(plain(corpus, work / f"p{docs}-{r}", False), files, work / f"pl{docs}-{r}")),
                 ("provenance", lambda: run(traced(corpus, work / f"t{docs}-{r}"), files, work / f"tl{docs}-{r}"))]
        for name, side in sides if r % 2 == 0 else sides[::-1]:
            times[name].append(side())
    ratios = [t / p for p, t in zip(times["plain"], times["provenance"])]
    return {"docs": docs, "tasks": files, "plain_s": spread(times["plain"]),
            "provenance_s": spread(times["provenance"]),
            "ratio": spread(ratios), "corpus": corpus, "traced_run": work / f"t{docs}-0"}


def same_answer(work: Path, size: dict) -> bool:
    """(c) as a check on real filter decisions: drops per filter per source from the exclusion files of a
    plain run with exclusion writers, and from the database of the traced run, agree."""
    import duckdb

    from qwen3_recipe.provenance.database import build_database
    excl = work / "excl"
    run(plain(size["corpus"], excl, True), size["tasks"], work / "excl-logs")
    run_dir = size["traced_run"] / "run"
    (run_dir / "jobs" / "data.web").mkdir(parents=True)
    shutil.move(str(size["traced_run"] / "provenance"), str(run_dir / "jobs" / "data.web" / "provenance"))
    sql = "select step, source, count(*) from decisions where decision = 'dropped' and step <> 'read' group by all"
    with duckdb.connect(str(build_database(run_dir)), read_only=True) as con:
        answered = {(s, src): n for s, src, n in con.sql(sql).fetchall()}
    return dict(scan_exclusions(excl)) == answered


def main() -> None:
    import qwen3_recipe.data  # noqa: F401 (quiet task logs)
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", default="3000", help="corpus sizes, comma-separated: 1500,3000,8000")
    parser.add_argument("--files", type=int, default=2, help="input files = datatrove tasks")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write results/3a.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder("3a", args.record)
    work = Path(tempfile.mkdtemp(prefix="bench-prov-"))
    try:
        sizes = [overhead(work, int(d), args.files, args.repeats) for d in args.docs.split(",")]
        result = {"sizes": [{k: v for k, v in s.items() if k not in ("corpus", "traced_run")} for s in sizes],
                  "repeats": args.repeats, "target_overhead": 1.05,
                  "same_answer_as_exclusion_files": same_answer(work, sizes[-1])}
        print(json.dumps(result))
        recorder.save(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
