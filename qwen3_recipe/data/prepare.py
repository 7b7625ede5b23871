"""`data.<source>` jobs: read one source, apply its quality filters and decontamination, write
the kept documents (JSONL) with per-document provenance."""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.filters import build_filter
from qwen3_recipe.data.readers import AccountDocuments, JsonlSourceReader
from qwen3_recipe.data.trace import Traced
from qwen3_recipe.data.wordcache import CachingWordTokenizer
from qwen3_recipe.errors import RecipeError


def step_names(kinds: list[str]) -> list[str]:
    """Provenance step names: the filter's name or type, numbered when a type repeats."""
    names, seen = [], {}
    for kind in kinds:
        seen[kind] = seen.get(kind, 0) + 1
        names.append(kind if kinds.count(kind) == 1 else f"{kind}_{seen[kind]}")
    return names


def reader_steps(plan: Plan, p: PlannedJob, prov: str) -> list[PipelineStep]:
    recipe, job = plan.loaded.recipe, p.job
    source_name = job.config["source"]
    source = recipe.data.sources[source_name]
    entry = plan.loaded.catalogs.datasets[source.dataset]
    spec, limit = entry.spec, source.limit or -1
    text_key, id_key = spec.text_field or "text", spec.id_field or "id"
    if spec.format == "jsonl":
        folder, pattern = local_files(entry.local_path())
        return [JsonlSourceReader(folder, source=source_name, job=job.name, prov_dir=prov,
                                  glob_pattern=pattern, text_key=text_key, id_key=id_key, limit=limit)]
    if spec.format == "parquet":
        from datatrove.pipeline.readers import ParquetReader
        folder, pattern = local_files(entry.local_path())
        reader = ParquetReader(folder, glob_pattern=pattern, text_key=text_key, id_key=id_key, limit=limit)
    else:
        from datatrove.pipeline.readers import HuggingFaceDatasetReader
        options = {"split": spec.split, "name": spec.config, "revision": spec.revision}
        reader = HuggingFaceDatasetReader(spec.hf_id, {k: v for k, v in options.items() if v is not None},
                                          streaming=True, text_key=text_key, id_key=id_key, limit=limit)
    return [reader, AccountDocuments(source_name, job.name, prov)]


def prepare_pipeline(plan: Plan, p: PlannedJob, decont_step: PipelineStep | None = None) -> list[PipelineStep]:
    recipe, job = plan.loaded.recipe, p.job
    folder = plan.run_dir / job.dir
    prov = str(folder / "provenance")
    source_name = job.config["source"]
    rate = recipe.outputs.provenance.kept_sample_rate
    chosen = [(i, f) for i, f in enumerate(recipe.data.filters) if f.sources is None or source_name in f.sources]
    names = step_names([f.name or f.type for _, f in chosen])
    steps = reader_steps(plan, p, prov)
    base = plan.loaded.path.parent
    words = CachingWordTokenizer("en")  # one tokenization per document for all blocks
    for index, ((i, cfg), name) in enumerate(zip(chosen, names), start=1):
        try:
            step = build_filter(cfg, f"data.filters.{i}", base, words)
        except RecipeError as exc:
            raise locate_problems(exc, plan) from None
        steps.append(Traced(step, index, name, job.name, prov, kept_sample_rate=rate))
    if decont_step is not None:
        steps.append(Traced(decont_step, len(chosen) + 1, "decontamination", job.name, prov,
                            kept_sample_rate=rate, evidence="contamination"))
    steps.append(JsonlWriter(str(folder / "output"), output_filename="${rank}.jsonl.gz"))
    return steps


def local_files(path: Path) -> tuple[str, str]:
    """A local source is one file or a folder of files: (datatrove data folder, glob pattern)."""
    return (str(path), "*") if path.is_dir() else (str(path.parent), path.name)


def locate_problems(exc: RecipeError, plan: Plan) -> RecipeError:
    """Point lowering errors (which know only their key path) at the recipe line."""
    for problem in exc.problems:
        if problem.loc is None and problem.path:
            keys = tuple(int(k) if k.isdigit() else k for k in problem.path.split("."))
            problem.loc = plan.loaded.raw.smap.find(keys)
    return exc


def input_files(plan: Plan, p: PlannedJob) -> int:
    """Tasks for a source: datatrove shards by file, so never more tasks than files."""
    tasks = plan.loaded.recipe.execution.tasks
    source = plan.loaded.recipe.data.sources[p.job.config["source"]]
    local = plan.loaded.catalogs.datasets[source.dataset].local_path()
    if local is None:
        return tasks
    files = sum(1 for f in local.iterdir() if f.is_file()) if local.is_dir() else 1
    return max(1, min(tasks, files))
