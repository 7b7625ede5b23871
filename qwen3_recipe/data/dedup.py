"""`data.dedup`: exact then MinHash (fuzzy) dedup across every source's kept documents.

datatrove's dedup filters drop documents by their position within a task, so the signature and
filter stages of each method read the same files with the same task count, and the two methods
run one after the other (exact writes an intermediate output the MinHash stages read) rather than
as two filters in one pipeline, where the first would shift the second's positions.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.writers import JsonlWriter

from qwen3_recipe.compiler.lowerers import load_lowered
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.corpus_io import Files, listing_reader, publish_files, write_listing
from qwen3_recipe.data.stages import Call, Stage
from qwen3_recipe.data.trace import Traced


def doc_text(doc) -> str:
    """Content for exact dedup (a module-level function with a return annotation, as datatrove asks)."""
    return doc.text


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl.gz"))


def replay(plan: Plan, p: PlannedJob, upto: str | None = None) -> Files:
    """The files method `upto` reads, or with None the job's final files: recomputed from what the
    sources and the earlier methods wrote (the same answer in this process or in a later Slurm job)."""
    lowered, folder = load_lowered(p, plan), plan.run_dir / p.job.dir
    files: Files = [(dep.split(".", 1)[1], f) for dep in lowered["inputs"]
                    for f in _files(plan.run_dir / "jobs" / dep / "output")]
    for m in lowered["methods"]:
        scope = [(s, f) for s, f in files if m["sources"] is None or s in m["sources"]]
        if m["method"] == upto:
            return scope
        if scope:
            out = folder / m["method"] / "output"
            kept = [(s, out / f"{rank:05d}.jsonl.gz") for rank, (s, _) in enumerate(scope)]
            # a task whose documents all went writes nothing
            files = [sf for sf in files if sf not in scope] + [(s, f) for s, f in kept if f.exists()]
    return [] if upto else files


def run_dedup(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.data.logs import quiet_datatrove
    from qwen3_recipe.launch.executors import run_stages
    from qwen3_recipe.provenance.database import build_database

    quiet_datatrove()
    lowered, folder = load_lowered(p, plan), plan.run_dir / p.job.dir
    for m in lowered["methods"]:
        scope = replay(plan, p, m["method"])
        if scope:
            write_listing([f for _, f in scope], plan.run_dir / "jobs", folder / m["method"] / "inputs.txt")
            run_stages(plan, p, method_stages(plan, p, m, len(scope), lowered))
    publish(p, plan)
    build_database(plan.run_dir)


def slurm_stages(p: PlannedJob, plan: Plan) -> list[Stage]:
    """The same stages with the task counts compiled before the sources ran; tasks beyond the files
    read nothing."""
    lowered, stages = load_lowered(p, plan), []
    for m in lowered["methods"]:
        if m["slurm_tasks"]:
            stages.append(Stage(f"{m['method']}-0-inputs",
                                call=Call(write_inputs, p, plan, m["method"], m["slurm_tasks"])))
            stages += method_stages(plan, p, m, m["slurm_tasks"], lowered)
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
    return plan.run_dir / "jobs", folder / method, folder / method / "inputs.txt", str(folder / "provenance")


def exact_stages(plan: Plan, p: PlannedJob, m: dict, tasks: int, lowered: dict) -> list[Stage]:
    from datatrove.pipeline.dedup.exact_dedup import (ExactDedupConfig, ExactDedupFilter,
                                                      ExactDedupSignature, ExactFindDedups)

    root, work, listing, prov = _context(plan, p, "exact")
    step, rate = m["step"], lowered["kept_sample_rate"]
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


def minhash_stages(plan: Plan, p: PlannedJob, m: dict, tasks: int, lowered: dict) -> list[Stage]:
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                          MinhashDedupSignature)
    from datatrove.pipeline.dedup.minhash import MinhashConfig

    root, work, listing, prov = _context(plan, p, "minhash")
    step, rate = m["step"], lowered["kept_sample_rate"]
    config = MinhashConfig(**m["config"])
    return [
        Stage("minhash-1-signatures",
              [listing_reader(root, listing), MinhashDedupSignature(str(work / "sigs"), config)], tasks),
        Stage("minhash-2-buckets", [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
              config.num_buckets),
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


def method_stages(plan: Plan, p: PlannedJob, m: dict, tasks: int, lowered: dict) -> list[Stage]:
    """One method's stages, on the compiled executor."""
    stages = STAGES[m["method"]](plan, p, m, tasks, lowered)
    for stage in stages:
        stage.executor = lowered["executor"]
    return stages
