"""Issue 4: our packed-tokens loader vs torchtitan's own HF text loader, tokens/s delivered.

One generated text corpus, one byte-level BPE tokenizer trained on it. Our side reads the corpus
as the mix job writes it (datatrove's DocumentTokenizer, eos "<|endoftext|>" after each document)
through `PackedTokensDataLoader`; torchtitan's side reads the same JSONL text through
`HuggingFaceTextDataLoader` (a dataset registered at run time in its DATASETS map, loaded offline
with `datasets`' json builder, tokenized on the fly with torchtitan's HuggingFaceTokenizer, eos
appended). Both are built through their `Config.build(...)` as the trainer builds them, with the
same seq_len and local batch size; each is iterated `--warmup` batches, then `--batches` batches
are timed; the best of `--repeats` rounds counts. Target: ours >= 1.0x torchtitan's.

Run: .venv/bin/python benchmarks/loader_vs_hf_text.py [--docs N] [--seq-len S] [--batch B] [--batches N]
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

EOS = "<|endoftext|>"  # what the mix job's DocumentTokenizer appends (qwen3_recipe/data/mix.py)
SPECIALS = [EOS, "<|im_start|>", "<|im_end|>"]
DATASET = "qwen3_recipe_bench_jsonl"


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
        path=str(corpus), loader=lambda path: load_dataset("json", data_files=files, split="train"),
        sample_processor=lambda sample: sample["text"])


def ours(tokens_dir: Path, tokenizer, seq_len: int, batch: int):
    from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader
    return PackedTokensDataLoader.Config(dataset_path=str(tokens_dir)).build(
        dp_world_size=1, dp_rank=0, tokenizer=tokenizer, seq_len=seq_len, local_batch_size=batch)


def torchtitans(tokenizer, seq_len: int, batch: int):
    from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataLoader
    return HuggingFaceTextDataLoader.Config(dataset=DATASET).build(
        dp_world_size=1, dp_rank=0, tokenizer=tokenizer, seq_len=seq_len, local_batch_size=batch)


def measure(build, warmup: int, batches: int) -> dict:
    started = time.perf_counter()
    loader = build()
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    built = time.perf_counter() - started
    tokens, started = 0, time.perf_counter()
    for _ in range(batches):
        inputs, _labels = next(it)
        tokens += inputs["input"].numel()
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "startup_and_warmup_s": built}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()

    from data_provenance import make_corpus
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
        rounds = {"ours": [], "torchtitan": []}
        for _ in range(args.repeats):  # alternate, so drifts hit both sides alike
            rounds["ours"].append(measure(lambda: ours(tokens_dir, tokenizer, args.seq_len, args.batch),
                                          args.warmup, args.batches))
            rounds["torchtitan"].append(measure(lambda: torchtitans(tokenizer, args.seq_len, args.batch),
                                                args.warmup, args.batches))
        best = {k: max(v, key=lambda r: r["tokens_per_s"]) for k, v in rounds.items()}
        print(json.dumps({
            "docs": args.docs, "corpus_tokens": total_tokens, "seq_len": args.seq_len, "batch": args.batch,
            "batches": args.batches, "warmup": args.warmup, "repeats": args.repeats,
            "first_document_tokens_equal": same,
            "ours": best["ours"], "torchtitan_hf_text": best["torchtitan"],
            "all_tokens_per_s": {k: [round(r["tokens_per_s"]) for r in v] for k, v in rounds.items()},
            "ratio": best["ours"]["tokens_per_s"] / best["torchtitan"]["tokens_per_s"],
        }, indent=2), file=stdout)
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
