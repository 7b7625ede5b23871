"""`data.dedup`: exact then MinHash (fuzzy) dedup across every source's kept documents.

datatrove's dedup filters drop documents by their position within a task, so the signature and
filter stages of each method read the same files with the same task count, and the two methods
run one after the other (exact writes an intermediate output the MinHash stages read) rather than
as two filters in one pipeline, where the first would shift the second's positions.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.writers import JsonlWriter

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.corpus_io import Files, listing_reader, publish_files, write_listing
from qwen3_recipe.data.stages import Call, Stage
from qwen3_recipe.data.trace import Traced


def doc_text(doc) -> str:
    """Content for exact dedup (a module-level function with a return annotation, as datatrove asks)."""
    return doc.text


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl.gz"))


METHODS = ("exact", "minhash")


def replay(plan: Plan, p: PlannedJob, upto: str | None = None) -> Files:
    """The files method `upto` reads, or with None the job's final files: recomputed from what the
    sources and the earlier methods wrote (the same answer in this process or in a later Slurm job)."""
    cfg, folder = plan.loaded.recipe.data.dedup, plan.run_dir / p.job.dir
    files: Files = [(dep.split(".", 1)[1], f) for dep in p.job.deps
                    for f in _files(plan.run_dir / "jobs" / dep / "output")]
    for method in METHODS:
        method_cfg = getattr(cfg, method)
        if not method_cfg.enabled:
            continue
        scope = [(s, f) for s, f in files if method_cfg.sources is None or s in method_cfg.sources]
        if method == upto:
            return scope
        if scope:
            out = folder / method / "output"
            kept = [(s, out / f"{rank:05d}.jsonl.gz") for rank, (s, _) in enumerate(scope)]
            # a task whose documents all went writes nothing
            files = [sf for sf in files if sf not in scope] + [(s, f) for s, f in kept if f.exists()]
    return [] if upto else files


def run_dedup(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.data.logs import quiet_datatrove
    from qwen3_recipe.launch.executors import run_stages
    from qwen3_recipe.provenance.database import build_database

    quiet_datatrove()
    cfg, folder = plan.loaded.recipe.data.dedup, plan.run_dir / p.job.dir
    for step, method in enumerate((m for m in METHODS if getattr(cfg, m).enabled), start=1):
        scope = replay(plan, p, method)
        if scope:
            write_listing([f for _, f in scope], plan.run_dir / "jobs", folder / method / "inputs.txt")
            run_stages(plan, p, STAGES[method](plan, p, step, len(scope)))
    publish(p, plan)
    build_database(plan.run_dir)


def slurm_stages(p: PlannedJob, plan: Plan) -> list[Stage]:
    """The same stages with task counts fixed before the sources ran: each source task writes at most
    one file, so a method gets as many tasks as its sources have; tasks beyond the files read nothing."""
    from qwen3_recipe.data.prepare_plan import input_files
    cfg, stages = plan.loaded.recipe.data.dedup, []
    for step, method in enumerate((m for m in METHODS if getattr(cfg, m).enabled), start=1):
        sources = getattr(cfg, method).sources
        tasks = sum(input_files(plan, plan[dep]) for dep in p.job.deps
                    if sources is None or dep.split(".", 1)[1] in sources)
        if tasks:
            stages.append(Stage(f"{method}-0-inputs", call=Call(write_inputs, p, plan, method, tasks)))
            stages += STAGES[method](plan, p, step, tasks)
    return stages + [Stage("publish", call=Call(publish, p, plan))]


def write_inputs(p: PlannedJob, plan: Plan, method: str, tasks: int) -> None:
    """Glue before a method's stages on Slurm: the listing of the files it reads."""
    scope = replay(plan, p, method)
    if len(scope) > tasks:
        raise RuntimeError(f"{p.job.name}: {len(scope)} files for {method} dedup, more than the {tasks} tasks "
                           f"submitted (stale files in a source's output folder?)")
    write_listing([f for _, f in scope], plan.run_dir / "jobs", plan.run_dir / p.job.dir / method / "inputs.txt")


def publish(p: PlannedJob, plan: Plan) -> None:
    publish_files(replay(plan, p), plan.run_dir / p.job.dir / "output")


def _context(plan: Plan, p: PlannedJob, method: str):
    folder = plan.run_dir / p.job.dir
    return (plan.run_dir / "jobs", folder / method, folder / method / "inputs.txt", str(folder / "provenance"),
            plan.loaded.recipe.outputs.provenance.kept_sample_rate)


def exact_stages(plan: Plan, p: PlannedJob, step: int, tasks: int) -> list[Stage]:
    from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter,
                                                      ExactDedupSignature, ExactFindDedups)

    root, work, listing, prov, rate = _context(plan, p, "exact")
    config = ExactDedupConfig(content_getter=doc_text)
    return [
        Stage("exact-1-signatures", [listing_reader(root, listing), ExactDedupSignature(str(work / "sigs"), config)],
              tasks),
        Stage("exact-2-find", [ExactFindDedups(str(work / "sigs"), str(work / "dups"), config)], 1),
        Stage("exact-3-filter", [
            listing_reader(root, listing),
            Traced(ExactDedupFilter(str(work / "dups"), config), step, "exact_dedup", p.job.name, prov,
                   drop_reason="exact_duplicate", kept_sample_rate=rate, evidence="exact"),
            JsonlWriter(str(work / "output"), output_filename="${rank}.jsonl.gz"),
        ], tasks),
    ]


def minhash_stages(plan: Plan, p: PlannedJob, step: int, tasks: int) -> list[Stage]:
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                          MinhashDedupSignature)
    from datatrove.pipeline.dedup.minhash import MinhashConfig

    root, work, listing, prov, rate = _context(plan, p, "minhash")
    mh = plan.loaded.recipe.data.dedup.minhash
    config = MinhashConfig(n_grams=mh.n_grams, num_buckets=mh.num_buckets, hashes_per_bucket=mh.hashes_per_bucket)
    return [
        Stage("minhash-1-signatures",
              [listing_reader(root, listing), MinhashDedupSignature(str(work / "sigs"), config)], tasks),
        Stage("minhash-2-buckets", [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
              mh.num_buckets),
        Stage("minhash-3-cluster", [MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config,
                                                        save_cluster_id=True, save_cluster_size=True)], 1),
        Stage("minhash-4-filter", [
            listing_reader(root, listing),
            Traced(MinhashDedupFilter(str(work / "remove"), load_cluster_ids=True, load_cluster_sizes=True),
                   step, "minhash_dedup", p.job.name, prov, drop_reason="near_duplicate", kept_sample_rate=rate,
                   evidence="minhash"),
            JsonlWriter(str(work / "output"), output_filename="${rank}.jsonl.gz"),
        ], tasks),
    ]


STAGES = {"exact": exact_stages, "minhash": minhash_stages}
