"""Issue 3 benchmark (d): the compiled FineWeb-style chain vs the same datatrove blocks wired by
hand, on one generated corpus - Gopher repetition, Gopher quality, C4 quality, FineWeb quality,
MinHash signatures. Target: >= 2x throughput with identical keep/drop decisions and signatures.

The compiled chain is what the recipe lowering builds: the same blocks, provenance on, and one
shared CachingWordTokenizer passed as `language` to every block (spaCy-identical words and sentences
served from a cache of whitespace-free chunks, learnt from spaCy during the run: each timed run
starts with a fresh, empty cache). The by-hand side is datatrove used directly: `language="en"`.
Run: .venv/bin/python benchmarks/fineweb_chain.py [--docs N] [--repeats R]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_provenance import make_corpus  # noqa: E402


class KeptIds:
    """Last step: write the ids of the documents that survived (the decisions to compare)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        with open(self.path, "w") as fh:
            for doc in data:
                fh.write(doc.id + "\n")
        return iter(())


def blocks(words):
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    return [("gopher_repetition", GopherRepetitionFilter(language=words)),
            ("gopher_quality", GopherQualityFilter(language=words)),
            ("c4_quality", C4QualityFilter(filter_no_terminal_punct=False, language=words)),
            ("fineweb_quality", FineWebQualityFilter(language=words))]


def by_hand(corpus: Path, out: Path) -> list:
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.readers import JsonlReader
    steps = [JsonlReader(str(corpus))] + [b for _, b in blocks("en")]
    return steps + [MinhashDedupSignature(str(out / "sigs")), ]


def compiled(corpus: Path, out: Path) -> list:
    from datatrove.pipeline.dedup import MinhashDedupSignature

    from qwen3_recipe.data.readers import JsonlSourceReader
    from qwen3_recipe.data.trace import Traced
    from qwen3_recipe.data.wordcache import CachingWordTokenizer
    words = CachingWordTokenizer("en")
    prov = str(out / "provenance")
    steps = [JsonlSourceReader(str(corpus), source="web", job="bench", prov_dir=prov, id_key="id")]
    steps += [Traced(b, i, name, "bench", prov) for i, (name, b) in enumerate(blocks(words), start=1)]
    return steps + [MinhashDedupSignature(str(out / "sigs"), language=words)]


def timed(pipeline, logs: Path) -> tuple[float, float]:
    """(wall, CPU) seconds; one task, one worker: datatrove runs it in this process."""
    from datatrove.executor import LocalPipelineExecutor
    started, cpu = time.perf_counter(), time.process_time()
    LocalPipelineExecutor(pipeline, tasks=1, workers=1, logging_dir=str(logs)).run()
    return time.perf_counter() - started, time.process_time() - cpu


def kept_ids(pipeline_builder, corpus: Path, out: Path) -> list[str]:
    """The same chain without the signature sink, ending in a step that lists survivors."""
    steps = pipeline_builder(corpus, out)[:-1] + [KeptIds(out / "kept.txt")]
    timed(steps, out / "logs-ids")
    return [i.split("/", 1)[-1] for i in (out / "kept.txt").read_text().split()]


def main() -> None:
    import qwen3_recipe.data  # noqa: F401 (quiet task logs)
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    try:
        corpus = work / "corpus"
        make_corpus(corpus, args.docs, 1)
        timed(by_hand(corpus, work / "warm"), work / "warm-logs")  # load spaCy once
        hand, ours = [], []
        for r in range(args.repeats):  # interleaved: load from other processes hits both sides alike
            hand.append(timed(by_hand(corpus, work / f"h{r}"), work / f"hl{r}"))
            ours.append(timed(compiled(corpus, work / f"c{r}"), work / f"cl{r}"))
        (hand_s, hand_cpu), (ours_s, ours_cpu) = min(hand), min(ours)
        same_decisions = kept_ids(by_hand, corpus, work / "hid") == kept_ids(compiled, corpus, work / "cid")
        sig_files = sorted(p.relative_to(work / "h0") for p in (work / "h0" / "sigs").rglob("*") if p.is_file())
        same_sigs = all(filecmp.cmp(work / "h0" / f, work / "c0" / f, shallow=False) for f in sig_files)
        print(json.dumps({"docs": args.docs, "by_hand_s": round(hand_s, 2), "compiled_s": round(ours_s, 2),
                          "speedup": round(hand_s / ours_s, 2), "target_speedup": 2.0,
                          "by_hand_cpu_s": round(hand_cpu, 2), "compiled_cpu_s": round(ours_cpu, 2),
                          "cpu_speedup": round(hand_cpu / ours_cpu, 2),
                          "docs_per_s_by_hand": round(args.docs / hand_s), "docs_per_s_compiled": round(args.docs / ours_s),
                          "identical_decisions": same_decisions, "identical_signatures": same_sigs and bool(sig_files)}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
