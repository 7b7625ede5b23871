"""`data.dedup`: exact then MinHash (fuzzy) dedup across every source's kept documents.

datatrove's dedup filters drop documents by their position within a task, so the signature and
filter stages of each method read the same files with the same task count, and the two methods
run one after the other (exact writes an intermediate output the MinHash stages read) rather than
as two filters in one pipeline, where the first would shift the second's positions.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.trace import Traced


def doc_text(doc) -> str:
    """Content for exact dedup (a module-level function with a return annotation, as datatrove asks)."""
    return doc.text


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl.gz"))


def _reader(files: list[Path], root: Path, listing: Path) -> JsonlReader:
    """Read exactly these files (a paths file keeps task -> file assignment identical across stages)."""
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{f.relative_to(root)}\n" for f in files))
    return JsonlReader(str(root), paths_file=str(listing), id_key="id", text_key="text")


Files = list[tuple[str, Path]]  # (source, file): one source per file, one file per task


def run_dedup(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.data.runner import quiet_datatrove
    from qwen3_recipe.provenance.database import build_database

    quiet_datatrove()
    cfg = plan.loaded.recipe.data.dedup
    folder = plan.run_dir / p.job.dir
    files: Files = [(dep.split(".", 1)[1], f) for dep in p.job.deps
                    for f in _files(plan.run_dir / "jobs" / dep / "output")]
    ctx = (plan, p, plan.run_dir / "jobs", str(folder / "provenance"),
           plan.loaded.recipe.outputs.provenance.kept_sample_rate)
    step = 1
    for method, run_method in (("exact", _exact), ("minhash", _minhash)):
        method_cfg = getattr(cfg, method)
        if not method_cfg.enabled:
            continue
        scope = [(s, f) for s, f in files if method_cfg.sources is None or s in method_cfg.sources]
        rest = [(s, f) for s, f in files if (s, f) not in scope]
        if scope:
            out = folder / method / "output"
            run_method(ctx, [f for _, f in scope], folder / method, step)
            scope = [(s, out / f"{rank:05d}.jsonl.gz") for rank, (s, _) in enumerate(scope)]
            scope = [(s, f) for s, f in scope if f.exists()]  # a task whose documents all went writes nothing
        files = rest + scope
        step += 1
    _publish(files, folder / "output")
    build_database(plan.run_dir)


def _publish(files: Files, out: Path) -> None:
    """The job's output folder: the final file of every source (hard links, copies across devices)."""
    import os
    import shutil
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for i, (source, f) in enumerate(files):
        target = out / f"{source}-{i:05d}.jsonl.gz"
        try:
            os.link(f, target)
        except OSError:
            shutil.copy2(f, target)


def _exact(ctx, files: list[Path], work: Path, step: int) -> None:
    from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter,
                                                      ExactDedupSignature, ExactFindDedups)
    from qwen3_recipe.data.runner import execute

    plan, p, root, prov, rate = ctx
    config = ExactDedupConfig(content_getter=doc_text)
    tasks = len(files)
    listing = work / "inputs.txt"
    execute(plan, p, [_reader(files, root, listing), ExactDedupSignature(str(work / "sigs"), config)],
                  tasks, "exact-1-signatures")
    execute(plan, p, [ExactFindDedups(str(work / "sigs"), str(work / "dups"), config)], 1,
                  "exact-2-find")
    out = work / "output"
    execute(plan, p, [
        _reader(files, root, listing),
        Traced(ExactDedupFilter(str(work / "dups"), config), step, "exact_dedup", p.job.name, prov,
               drop_reason="exact_duplicate", kept_sample_rate=rate, evidence="exact"),
        JsonlWriter(str(out), output_filename="${rank}.jsonl.gz"),
    ], tasks, "exact-3-filter")


def _minhash(ctx, files: list[Path], work: Path, step: int) -> None:
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                          MinhashDedupSignature)
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from qwen3_recipe.data.runner import execute

    plan, p, root, prov, rate = ctx
    out = work / "output"
    mh = plan.loaded.recipe.data.dedup.minhash
    config = MinhashConfig(n_grams=mh.n_grams, num_buckets=mh.num_buckets, hashes_per_bucket=mh.hashes_per_bucket)
    tasks = len(files)
    listing = work / "inputs.txt"
    execute(plan, p, [_reader(files, root, listing), MinhashDedupSignature(str(work / "sigs"), config)],
                  tasks, "minhash-1-signatures")
    execute(plan, p, [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
                  mh.num_buckets, "minhash-2-buckets")
    execute(plan, p, [MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config,
                                                save_cluster_id=True, save_cluster_size=True)],
                  1, "minhash-3-cluster")
    execute(plan, p, [
        _reader(files, root, listing),
        Traced(MinhashDedupFilter(str(work / "remove"), load_cluster_ids=True, load_cluster_sizes=True),
               step, "minhash_dedup", p.job.name, prov, drop_reason="near_duplicate", kept_sample_rate=rate,
               evidence="minhash"),
        JsonlWriter(str(out), output_filename="${rank}.jsonl.gz"),
    ], tasks, "minhash-4-filter")
