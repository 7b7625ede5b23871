"""The compiled form of a `data.<source>` job (written by `compile` as its lowered.json): the
reader, each filter block with its arguments (data/filters.py filter_block), the decontamination
settings, the writer, the task count and the executor. data/prepare.py builds the datatrove
pipeline from this and nothing else. No engine is imported here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.errors import RecipeError
from qwen3_recipe.launch.settings import executor_settings
from qwen3_recipe.recipe.schema.data import step_names


def local_files(path: Path) -> tuple[str, str]:
    """A local source is one file or a folder of files: (datatrove data folder, glob pattern)."""
    return (str(path), "*") if path.is_dir() else (str(path.parent), path.name)


def input_files(plan: Plan, p: PlannedJob) -> int:
    """Tasks for a source: datatrove shards by file, so never more tasks than files."""
    tasks = plan.loaded.recipe.execution.tasks
    source = plan.loaded.recipe.data.sources[p.job.config["source"]]
    if source.synth:  # one Parquet file
        return 1
    local = plan.loaded.catalogs.datasets[source.dataset].local_path()
    if local is None:
        return tasks
    files = sum(1 for f in local.iterdir() if f.is_file()) if local.is_dir() else 1
    return max(1, min(tasks, files))


def setting_loc(plan: Plan, setting: str):
    """Where the recipe sets a dotted key path (`data.filters.3.model_path`)."""
    return plan.loaded.raw.smap.find(tuple(int(k) if k.isdigit() else k for k in setting.split(".")))


def locate_problems(exc: RecipeError, plan: Plan) -> RecipeError:
    """Point lowering errors (which know only their key path) at the recipe line."""
    for problem in exc.problems:
        if problem.loc is None and problem.path:
            problem.loc = setting_loc(plan, problem.path)
    return exc


def reader(plan: Plan, p: PlannedJob) -> dict[str, Any]:
    source = plan.loaded.recipe.data.sources[p.job.config["source"]]
    out: dict[str, Any] = {"limit": source.limit or -1, "on_duplicate_id": source.on_duplicate_id}
    if source.synth:  # the synth job's kept samples, rendered (data/synth_source.py)
        dataset = plan.run_dir / plan[f"synth.{source.synth}"].job.outputs["dataset"]
        out |= {"format": "synth", "text_key": "text", "id_key": "id", "render": source.render,
                "synth_job": f"synth.{source.synth}", "glob_pattern": "*.parquet",
                "data_folder": str(dataset.resolve())}
    else:
        entry = plan.loaded.catalogs.datasets[source.dataset]
        spec = entry.spec
        out |= {"format": spec.format, "text_key": spec.text_field or "text", "id_key": spec.id_field or "id"}
        if spec.format in ("jsonl", "parquet"):
            out["data_folder"], out["glob_pattern"] = local_files(entry.local_path())
        else:
            options = {"split": spec.split, "name": spec.config, "revision": spec.revision}
            out["dataset"], out["dataset_options"] = spec.hf_id, {k: v for k, v in options.items() if v is not None}
    if source.on_duplicate_id != "fail":  # an id scan first: later rows of repeated ids, renamed or dropped
        folder = (plan.run_dir / p.job.dir).resolve()
        out["ids_scan"] = str(folder / "ids")
        out["duplicates"] = str(folder / "ids" / "duplicates.json")
    return out


def decontamination(plan: Plan, p: PlannedJob) -> dict[str, Any] | None:
    cfg = p.job.config["decontamination"]
    benchmarks = cfg and sorted(k.split(":", 1)[1] for k in p.job.inputs if k.startswith("benchmark:"))
    if not benchmarks:
        return None
    return {"benchmarks": benchmarks, "method": cfg["method"], "n": cfg["n"], "action": cfg["action"],
            "tokenizer": cfg.get("tokenizer")}


def prepare_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    """The lowerer of `data_prepare` jobs."""
    from qwen3_recipe.data.filters import filter_block

    folder = (plan.run_dir / p.job.dir).resolve()
    source_name = p.job.config["source"]
    chosen = [(i, f) for i, f in enumerate(plan.loaded.recipe.data.filters)  # label filters: quality.label's
              if f.type != "label" and (f.sources is None or source_name in f.sources)]
    base = plan.loaded.path.parent
    blocks = []
    for index, ((i, cfg), name) in enumerate(zip(chosen, step_names([f.name or f.type for _, f in chosen])), 1):
        try:
            setting = plan.loaded.generated.get(f"data.filters.{i}", f"data.filters.{i}")  # data.languages'
            block = filter_block(cfg, setting, base)
            if "model_path" in block["args"]:  # a file checked where the job runs: say there where it was set
                where = setting_loc(plan, f"{setting}.model_path")
                block["where"] = {"file": where.file, "line": where.line, "col": where.col} if where else None
            blocks.append({"index": index, "name": name, **block})
        except RecipeError as exc:
            raise locate_problems(exc, plan) from None
    return {
        "source": source_name, "reader": reader(plan, p), "filters": blocks,
        "decontamination": decontamination(plan, p),
        "provenance": {"folder": str(folder / "provenance"), "kept_sample_rate": p.job.config["kept_sample_rate"]},
        "writer": {"output_folder": str(folder / "output"), "output_filename": "${rank}.jsonl.gz"},
        "tasks": input_files(plan, p), "executor": executor_settings(plan, p.job.name),
        "dump_folder": str(folder),  # what it writes lies here (load_lowered checks it)
    }
