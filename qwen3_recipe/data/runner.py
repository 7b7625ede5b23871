"""The runner of the `data.<source>` jobs: data/prepare.py's pipeline (with the decontamination
filter, from the compiled artifact) run on its executor (launch/executors.py), the unique-id check
(and before them, for on_duplicate_id keep_first/suffix, the id scan), then a refresh of the run's
provenance database. On Slurm the same stages are submitted as array jobs (launch/slurm_data.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from qwen3_recipe.compiler.lowerers import load_lowered
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.duplicate_ids import check_unique_ids, resolve_ids
from qwen3_recipe.data.logs import quiet_datatrove
from qwen3_recipe.data.prepare import prepare_pipeline, reader_steps
from qwen3_recipe.data.prepare_plan import locate_problems
from qwen3_recipe.data.stages import Call, Stage
from qwen3_recipe.errors import RecipeError
from qwen3_recipe.launch.executors import run_stages
from qwen3_recipe.provenance.database import build_database


def prepare_stages(p: PlannedJob, plan: Plan) -> list[Stage]:
    """The job's stages, from what `compile` wrote (data/prepare_plan.py): the pipeline, then the
    check that no id repeats; with on_duplicate_id keep_first/suffix, an id scan and its
    resolution first (data/duplicate_ids.py)."""
    lowered = load_lowered(p, plan)
    tasks, executor = lowered["tasks"], lowered["executor"]
    try:
        pipeline = prepare_pipeline(lowered, p.job.name, decont_step(plan, lowered["decontamination"]))
    except RecipeError as exc:  # a block's file went missing since compile, a custom step does not import
        raise locate_problems(exc, plan) from None
    stages = []
    if lowered["reader"]["on_duplicate_id"] != "fail":
        stages += [Stage("ids-1-scan", reader_steps(lowered, p.job.name, scan=True), tasks, executor=executor),
                   Stage("ids-2-resolve", call=Call(resolve_ids, p, plan))]
    return stages + [Stage("", pipeline, tasks, executor=executor),
                     Stage("finish", call=Call(check_unique_ids, p, plan))]  # Slurm: with the done marker


def run_prepare(p: PlannedJob, plan: Plan) -> None:
    quiet_datatrove()
    run_stages(plan, p, prepare_stages(p, plan))
    build_database(plan.run_dir)


def decont_step(plan: Plan, settings: dict[str, Any] | None):
    """The decontamination filter for a data job (its compiled settings), with its n-gram index
    built once per run."""
    if not settings:
        return None
    from qwen3_recipe.data.decont_index import DecontIndexBuilder
    cfg = SimpleNamespace(**settings)
    if cfg.method == "datatrove":
        from datatrove.pipeline.decont.n_grams import NGramsDecontConfig

        from qwen3_recipe.data.decont_datatrove import DatatroveDecontFilter
        folder = DecontIndexBuilder(plan).datatrove_index(cfg.benchmarks, cfg)
        return DatatroveDecontFilter(str(folder), config=NGramsDecontConfig(n_grams=cfg.n or 13))
    index = DecontIndexBuilder(plan).index_path(cfg.benchmarks, cfg)
    from qwen3_recipe.data.decont import DecontaminationFilter
    return DecontaminationFilter(str(index), action=cfg.action)
