"""Issue 3 benchmark (d): the compiled FineWeb-style chain vs the same datatrove blocks wired by
hand, on one corpus - Gopher repetition, Gopher quality, C4 quality, FineWeb quality, MinHash
signatures. Target: >= 2x throughput with identical keep/drop decisions and signatures.

The compiled chain is what the recipe lowering builds: the same blocks, provenance on, and one
shared CachingWordTokenizer passed as `language` to every block (spaCy-identical words and sentences
served from a cache of whitespace-free chunks, learnt from spaCy during the run: each timed run
starts with a fresh, empty cache). The by-hand side is datatrove used directly: `language="en"`.

`--corpus generated` (the default) is bench_corpora's generated corpus; `--corpus
real` is benchmarks/bench_corpora.py's real corpus (Python docs, licenses, copyright files, changelogs,
translated man pages), all of it or the first `--docs`. Decisions are compared per document (kept, or
the step that dropped it); a document decided differently is replayed through both chains alone, and
the two word tokenizers are compared on the text that step saw, to name the cause.
Run: .venv/bin/python benchmarks/fineweb_chain.py [--docs N] [--repeats 3] [--corpus real] [--record]
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
from bench_corpora import generated_corpus, real_corpus_summary  # noqa: E402
from record import Recorder, spread  # noqa: E402

STEPS = ["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"]


class KeptIds:
    """Last step: write the ids of the documents that survived (the decisions to compare)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        with open(self.path, "w") as fh:
            for doc in data:
                fh.write(doc.id + "\n")
        return iter(())


class Survivors(KeptIds):
    """A step between two blocks: write the ids of the documents that got this far, pass them on."""

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        with open(self.path, "w") as fh:
            for doc in data:
                fh.write(doc.id + "\n")
                yield doc


def blocks(words):
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    return list(zip(STEPS, [GopherRepetitionFilter(language=words), GopherQualityFilter(language=words),
                            C4QualityFilter(filter_no_terminal_punct=False, language=words),
                            FineWebQualityFilter(language=words)]))


def by_hand(corpus: Path, out: Path) -> list:
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.readers import JsonlReader
    steps = [JsonlReader(str(corpus))] + [b for _, b in blocks("en")]
    return steps + [MinhashDedupSignature(str(out / "sigs"))]


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


def _ids(path: Path) -> list[str]:
    return [i.split("/", 1)[-1] for i in path.read_text().split()]  # the compiled side's ids are web/<id>


def decisions(pipeline_builder, corpus: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    """The same chain without the signature sink, listing the survivors after every step: (the kept ids
    in order, id -> "kept" or the step that dropped it)."""
    reader, *filters = pipeline_builder(corpus, out)[:-1]
    steps = [reader, Survivors(out / "read.txt")]
    for name, block in zip(STEPS, filters):
        steps += [block, Survivors(out / f"{name}.txt")]
    timed(steps[:-1] + [KeptIds(out / "kept.txt")], out / "logs-ids")
    kept = _ids(out / "kept.txt")
    fate = {i: "kept" for i in kept}
    for name in reversed(["read"] + STEPS[:-1]):  # a document's fate: the step after the last list it is on
        later = STEPS[(["read"] + STEPS).index(name)]
        fate.update({i: later for i in _ids(out / f"{name}.txt") if i not in fate})
    return kept, fate


def explain(text: str) -> dict:
    """Replay one document through both chains alone: the step and reason each side gives, and the first
    text (the step's input, or one of its lines) on which spaCy and the word cache answer differently."""
    from datatrove.data import Document
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from qwen3_recipe.data.wordcache import CachingWordTokenizer
    spacy, cache = load_word_tokenizer("en"), CachingWordTokenizer("en")
    replay, first_input = {}, {}
    for side, words in (("by_hand", "en"), ("compiled", cache)):
        doc = Document(text=text, id="replay")
        replay[side] = "kept"
        for name, block in blocks(words):
            first_input.setdefault(name, doc.text)
            result = block.filter(doc)
            if result is not True:
                replay[side] = f"{name}: {result[1] if isinstance(result, tuple) else 'dropped'}"
                break
    cause = "unattributed: spaCy and the word cache agree on every text looked at"
    if replay["by_hand"] == replay["compiled"]:
        cause = "not reproduced alone (both sides agree on the document replayed by itself)"
    else:
        step = STEPS[min(STEPS.index(v.split(":")[0]) if v != "kept" else len(STEPS) - 1 for v in replay.values())]
        for t in [first_input[step]] + first_input[step].splitlines():
            for kind in ("word_tokenize", "sent_tokenize"):
                a, b = getattr(spacy, kind)(t), getattr(cache, kind)(t)
                if a != b:
                    at = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                    return {"replay": replay, "cause": f"{kind} differs at {at}: spaCy {a[at:at + 3]} vs cache "
                                                       f"{b[at:at + 3]}"}
    return {"replay": replay, "cause": cause}


def write_real(folder: Path, docs: int | None) -> tuple[dict[str, str], dict]:
    """The real corpus as one JSONL file, ids r<k> (real ids hold "/", which the id comparison splits on):
    (r<k> -> real id, corpus summary)."""
    corpus, summary = real_corpus_summary(max_docs=docs)
    folder.mkdir(parents=True)
    with open(folder / "part-000.jsonl", "w") as fh:
        for k, doc in enumerate(corpus):
            fh.write(json.dumps({"id": f"r{k}", "text": doc["text"]}, ensure_ascii=False) + "\n")
    return {f"r{k}": doc["id"] for k, doc in enumerate(corpus)}, summary


def main() -> None:
    import qwen3_recipe.data  # noqa: F401 (quiet task logs)
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", choices=["generated", "real"], default="generated")
    parser.add_argument("--docs", type=int, default=None, help="generated: 2000; real: the first N (all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=20, help="disagreements printed in full")
    parser.add_argument("--record", action="store_true", help="write results/3d-<corpus>.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder(f"3d-{args.corpus}", args.record)
    work = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    try:
        corpus = work / "corpus"
        if args.corpus == "real":
            real_ids, summary = write_real(corpus, args.docs)
        else:
            generated_corpus(corpus, args.docs or 2000, 1)
            real_ids, summary = {}, None
        texts = {r["id"]: r["text"] for r in map(json.loads, (corpus / "part-000.jsonl").read_text().splitlines())}
        timed(by_hand(corpus, work / "warm-h"), work / "warm-hl")  # spaCy, datatrove's imports: both sides
        timed(compiled(corpus, work / "warm-c"), work / "warm-cl")
        hand, ours = [], []
        for r in range(args.repeats):  # pairs, the order switching: load from elsewhere hits both sides alike
            sides = [(hand, lambda: timed(by_hand(corpus, work / f"h{r}"), work / f"hl{r}")),
                     (ours, lambda: timed(compiled(corpus, work / f"c{r}"), work / f"cl{r}"))]
            for times, side in sides if r % 2 == 0 else sides[::-1]:
                times.append(side())
        (hand_kept, hand_fate), (ours_kept, ours_fate) = (decisions(by_hand, corpus, work / "hid"),
                                                          decisions(compiled, corpus, work / "cid"))
        sig_files = sorted(p.relative_to(work / "h0") for p in (work / "h0" / "sigs").rglob("*") if p.is_file())
        same_sigs = all(filecmp.cmp(work / "h0" / f, work / "c0" / f, shallow=False) for f in sig_files)
        for fate in (hand_fate, ours_fate):
            fate.update({i: "read" for i in texts if i not in fate})  # on no list: the reader dropped it
        differ = [{"id": real_ids.get(i, i), "by_hand": hand_fate[i], "compiled": ours_fate[i], **explain(texts[i])}
                  for i in texts if hand_fate[i] != ours_fate[i]]
        for d in differ[:args.examples]:
            print(f"disagreement: {json.dumps(d, ensure_ascii=False)}", file=sys.stderr)
        n = len(texts)
        dropped = {side: {step: sum(1 for f in fate.values() if f == step) for step in ["read"] + STEPS}
                   for side, fate in (("by_hand", hand_fate), ("compiled", ours_fate))}
        result = {"corpus": args.corpus, "docs": n, "repeats": args.repeats, "target_speedup": 2.0,
                  "by_hand_s": spread(s for s, _ in hand), "compiled_s": spread(s for s, _ in ours),
                  "by_hand_cpu_s": spread(c for _, c in hand), "compiled_cpu_s": spread(c for _, c in ours),
                  "speedup": spread(h / o for (h, _), (o, _) in zip(hand, ours)),  # per alternating pair
                  "cpu_speedup": spread(h / o for (_, h), (_, o) in zip(hand, ours)),
                  "docs_per_s_by_hand": spread((n / s for s, _ in hand), 1),
                  "docs_per_s_compiled": spread((n / s for s, _ in ours), 1),
                  "identical_decisions": hand_kept == ours_kept,
                  "identical_signatures": same_sigs and bool(sig_files),
                  "identical_decision_rate": round(1 - len(differ) / n, 5), "dropped_per_step": dropped,
                  "disagreements": len(differ), "disagreement_examples": differ[:args.examples],
                  "disagreement_causes": {c: sum(d["cause"].split(" at ")[0] == c for d in differ)
                                          for c in dict.fromkeys(d["cause"].split(" at ")[0] for d in differ)}}
        result.update({"real_corpus": summary} if summary else {})
        print(json.dumps(result, ensure_ascii=False))
        recorder.save(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
