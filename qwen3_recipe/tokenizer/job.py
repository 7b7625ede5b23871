"""The `tokenizer` job: train a byte-level BPE on the curated documents, or copy a pretrained
tokenizer, into `<run>/jobs/tokenizer/tokenizer/`, atomically (built beside it, then renamed)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen3_recipe.tokenizer.qwen3 import load_pretrained, save_tokenizer, train_bpe

if TYPE_CHECKING:
    from qwen3_recipe.compiler.plan import Plan, PlannedJob

TMP_PREFIX = ".tokenizer.tmp-"


def output_dir(p: "PlannedJob", plan: "Plan") -> Path:
    return Path(plan.run_dir) / p.job.dir / "tokenizer"


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else path.open(encoding="utf-8")


def document_files(plan: "Plan", deps: list[str]) -> list[Path]:
    """The JSONL(.gz) files the data jobs wrote, in a fixed order (deps as listed, files sorted)."""
    files: list[Path] = []
    for dep in deps:
        folder = Path(plan.run_dir) / "jobs" / dep / "output"
        if not folder.is_dir():
            raise FileNotFoundError(f"tokenizer: no documents from {dep} ({folder} is missing); run {dep} first")
        files += sorted(f for f in folder.iterdir() if f.name.endswith((".jsonl.gz", ".jsonl")))
    return files


def documents(files: list[Path], sources: list[str] | None = None,
              max_documents: int | None = None) -> Iterator[str]:
    """Texts of the documents in files; only those whose metadata.source is in sources when given;
    at most max_documents of them when given."""
    wanted = set(sources) if sources else None
    count = 0
    for path in files:
        with _open(path) as fh:
            for line in fh:
                if max_documents is not None and count >= max_documents:
                    return
                if not line.strip():
                    continue
                doc: dict[str, Any] = json.loads(line)
                if wanted is not None and (doc.get("metadata") or {}).get("source") not in wanted:
                    continue
                text = doc.get("text")
                if not text:
                    continue
                count += 1
                yield text


def _clear_stale(parent: Path) -> None:
    """Half-built tokenizers left by a killed run."""
    for stale in parent.glob(TMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def run_tokenizer(p: "PlannedJob", plan: "Plan") -> None:
    from qwen3_recipe.compiler.lowerers import load_lowered
    cfg = load_lowered(p, plan)
    out = output_dir(p, plan)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(out.parent)
    tmp = out.parent / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # not mkdtemp: the finished folder gets the usual (umask) permissions
    try:
        if cfg["type"] == "train":
            files, counted = document_files(plan, cfg["inputs"]), [0]

            def texts() -> Iterator[str]:
                for text in documents(files, cfg.get("sources"), cfg.get("max_documents")):
                    counted[0] += 1
                    yield text

            tok = train_bpe(texts(), cfg["vocab_size"])
            if counted[0] == 0:
                wanted = f" from sources {cfg['sources']}" if cfg.get("sources") else ""
                raise ValueError(f"tokenizer: no documents{wanted} in the output of {', '.join(cfg['inputs'])}")
            save_tokenizer(tok, tmp, cfg["model_max_length"])
        elif cfg["type"] == "pretrained":
            load_pretrained(cfg["path"], tmp)
        else:
            raise ValueError(f"tokenizer: unknown type {cfg['type']!r}")
        if out.exists():
            old = out.with_name(f"{TMP_PREFIX}old-{os.getpid()}")
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
