"""Issue 4 (made like-for-like in issue 18): our packed-tokens loader vs torchtitan's own HF text loader.

One generated text corpus, one byte-level BPE tokenizer trained on it (untimed, shared). Three sides per
repeat, alternating, each delivering the same number of whole batches (one epoch of the corpus):

- ours, first epoch: text to batches. The mix job's tokenize stage (datatrove's DocumentTokenizer over the
  JSONL, eos "<|endoftext|>" after each document), then `PackedTokensDataLoader` over its output.
- torchtitan, first epoch: text to batches. `HuggingFaceTextDataLoader` over the same JSONL (a dataset
  registered at run time in its DATASETS map, read offline by `datasets`' json builder with an empty cache,
  tokenized on the fly by torchtitan's HuggingFaceTokenizer, eos appended).
- ours, load only: the loader over tokens already written. torchtitan 0.3.0 has no loader of pre-tokenized
  data, so this side has no torchtitan counterpart: it is what later epochs and later stages pay.

Both loaders are built through their `Config.build(...)` as the trainer builds them, single process, with
the same seq_len and local batch size. Target: ours >= 1.0x torchtitan's on the first epoch. Run it with
TOKENIZERS_PARALLELISM=false for one core a side: otherwise the tokenizers library batch-encodes our
side on every core while torchtitan's loader encodes one document at a time (the CPU time says so).

Run: OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false .venv/bin/python benchmarks/loader_vs_hf_text.py [--docs N]
     [--seq-len S] [--batch B] [--repeats 3] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Recorder, spread  # noqa: E402

EOS = "<|endoftext|>"  # what the mix job's DocumentTokenizer appends (qwen3_recipe/data/mix.py)
SPECIALS = [EOS, "<|im_start|>", "<|im_end|>"]
DATASET = "qwen3_recipe_bench_jsonl"
HF_CACHE = {"dir": None}  # `datasets`' cache for the next load (its env variable is read once, at import)


def make_tokenizer(folder: Path, corpus: Path, vocab: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [json.loads(line)["text"] for f in sorted(corpus.glob("*.jsonl"))
             for line in f.read_text().splitlines()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": EOS, "bos_token": None, "add_bos_token": False, "add_eos_token": False,
        "model_max_length": 1 << 20, "tokenizer_class": "PreTrainedTokenizerFast"}))
    return folder


def tokenize_packed(corpus: Path, tokenizer_dir: Path, out: Path, logs: Path) -> Path:
    """The mix job's tokenize stage: JsonlReader -> DocumentTokenizer, one task, no shuffling."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    LocalPipelineExecutor([
        JsonlReader(str(corpus), id_key="id", text_key="text"),
        DocumentTokenizer(str(out), tokenizer_name_or_path=str(tokenizer_dir / "tokenizer.json"),
                          eos_token=EOS, shuffle_documents=False, save_filename="bench",
                          local_working_dir=str(logs / "work")),
    ], tasks=1, workers=1, logging_dir=str(logs / "logs")).run()
    return out


def register_hf_dataset(corpus: Path) -> None:
    """Point torchtitan's text loader at local JSONL, offline (its c4_test assets are not shipped)."""
    from datasets import load_dataset
    from torchtitan.hf_datasets import DatasetConfig
    from torchtitan.hf_datasets.text_datasets import DATASETS

    files = [str(f) for f in sorted(corpus.glob("*.jsonl"))]
    DATASETS[DATASET] = DatasetConfig(
        path=str(corpus), loader=lambda path: load_dataset("json", data_files=files, split="train",
                                                           cache_dir=HF_CACHE["dir"]),
        sample_processor=lambda sample: sample["text"])


def ours(tokens_dir: Path, tokenizer, seq_len: int, batch: int):
    from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader
    return PackedTokensDataLoader.Config(dataset_path=str(tokens_dir)).build(
        dp_world_size=1, dp_rank=0, tokenizer=tokenizer, seq_len=seq_len, local_batch_size=batch)


def torchtitans(tokenizer, seq_len: int, batch: int):
    from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataLoader
    return HuggingFaceTextDataLoader.Config(dataset=DATASET).build(
        dp_world_size=1, dp_rank=0, tokenizer=tokenizer, seq_len=seq_len, local_batch_size=batch)


def measure(build, batches: int, warmup: int = 0) -> dict:
    """Build the loader (inside the timer), skip `warmup` batches untimed-apart, time `batches` batches."""
    started = time.perf_counter()
    it = iter(build())
    for _ in range(warmup):
        next(it)
    built = time.perf_counter() - started
    tokens, started = 0, time.perf_counter()
    for _ in range(batches):
        inputs, _labels = next(it)
        tokens += inputs["input"].numel()
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "startup_s": built}


def first_epoch_ours(root: Path, r: int, tok_dir: Path, tokenizer, args, batches: int) -> dict:
    """Text to batches: the mix job's tokenize stage over the JSONL, then the loader over the whole epoch."""
    started, cpu = time.perf_counter(), time.process_time()
    tokens_dir = tokenize_packed(root / "corpus", tok_dir, root / f"tokens-{r}", root / f"dt-{r}")
    tokenize_s = time.perf_counter() - started
    out = measure(lambda: ours(tokens_dir, tokenizer, args.seq_len, args.batch), batches)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "tokens_per_s": out["tokens"] / seconds,
            "tokenize_s": tokenize_s}


def first_epoch_torchtitan(root: Path, r: int, tokenizer, args, batches: int) -> dict:
    """Text to batches: torchtitan's HF loader from the same JSONL, `datasets`' cache empty (it parses the JSON
    as our tokenize stage does), tokenizing on the fly over the whole epoch."""
    HF_CACHE["dir"] = str(root / f"hf-{r}")
    started, cpu = time.perf_counter(), time.process_time()
    out = measure(lambda: torchtitans(tokenizer, args.seq_len, args.batch), batches)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "tokens_per_s": out["tokens"] / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=10000)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--record", action="store_true", help="write results/4a.json (benchmarks/table.py)")
    args = ap.parse_args()
    recorder = Recorder("4a", args.record)

    from bench_corpora import generated_corpus as make_corpus
    from torchtitan.components.tokenizer import HuggingFaceTokenizer

    sys.stdout.flush()  # stdout carries only the JSON: everything else (datatrove, datasets) goes to stderr
    stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    with tempfile.TemporaryDirectory(prefix="loader_bench_") as tmp:
        root = Path(tmp)
        os.environ["HF_HOME"] = os.environ["HF_DATASETS_CACHE"] = str(root / "hf")
        make_corpus(root / "corpus", args.docs, 1)
        tok_dir = make_tokenizer(root / "tokenizer", root / "corpus", args.vocab)
        tokens_dir = tokenize_packed(root / "corpus", tok_dir, root / "tokens", root / "dt")
        register_hf_dataset(root / "corpus")
        tokenizer = HuggingFaceTokenizer(tokenizer_path=str(tok_dir))

        # like-for-like: the first document's tokens open both loaders' first input row
        first_text = json.loads((root / "corpus" / "part-000.jsonl").read_text().split("\n", 1)[0])["text"]
        first_doc = tokenizer.encode(first_text, add_bos=False, add_eos=False)
        n = min(len(first_doc), args.seq_len)
        a = next(iter(ours(tokens_dir, tokenizer, args.seq_len, args.batch)))[0]["input"][0, :n].tolist()
        b = next(iter(torchtitans(tokenizer, args.seq_len, args.batch)))[0]["input"][0, :n].tolist()
        same = a == b == first_doc[:n]
        print(f"first document: {len(first_doc)} tokens; both loaders' first {n} input tokens equal "
              f"the tokenizer's encoding: {same}", file=sys.stderr)

        total_tokens = sum(int(np.fromfile(f"{f}.index", dtype=np.uint64)[-1]) for f in tokens_dir.glob("*.ds"))
        batches = total_tokens // ((args.seq_len + 1) * args.batch) - 1  # one epoch, whole batches, on both sides
        rounds = {"ours_first_epoch": [], "torchtitan_first_epoch": [], "ours_load_only": []}
        for r in range(args.repeats):  # alternating, the order switching, so drifts hit both sides alike
            sides = [("ours_first_epoch", lambda: first_epoch_ours(root, r, tok_dir, tokenizer, args, batches)),
                     ("torchtitan_first_epoch", lambda: first_epoch_torchtitan(root, r, tokenizer, args, batches))]
            for name, run in sides[::-1] if r % 2 else sides:
                rounds[name].append(run())
            rounds["ours_load_only"].append(measure(lambda: ours(tokens_dir, tokenizer, args.seq_len, args.batch),
                                                    batches))
        ratios = [o["tokens_per_s"] / t["tokens_per_s"]
                  for o, t in zip(rounds["ours_first_epoch"], rounds["torchtitan_first_epoch"])]
        result = {
            "docs": args.docs, "corpus_tokens": total_tokens, "seq_len": args.seq_len, "batch": args.batch,
            "batches": batches, "repeats": args.repeats, "first_document_tokens_equal": same,
            "tokens_per_s": {k: spread((x["tokens_per_s"] for x in v), 0) for k, v in rounds.items()},
            "seconds": {k: spread(x["seconds"] for x in v) for k, v in rounds.items()},
            "ours_tokenize_s": spread(x["tokenize_s"] for x in rounds["ours_first_epoch"]),
            # process CPU time, all threads (the tokenizers library batch-encodes on every core; torchtitan's
            # loader encodes one document at a time)
            "cpu_s": {k: spread(x["cpu_s"] for x in rounds[k]) for k in ("ours_first_epoch", "torchtitan_first_epoch")},
            "first_epoch_ratio": spread(ratios, 2), "target_ratio": 1.0,
            "one_core": os.environ.get("TOKENIZERS_PARALLELISM", "").lower() == "false",
            "load_only_baseline": None,  # torchtitan 0.3.0 has no loader of pre-tokenized data (hf_datasets only)
        }
        print(json.dumps(result, indent=2), file=stdout)
        recorder.save(result)
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
