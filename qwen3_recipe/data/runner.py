"""The runner of the `data.<source>` jobs: one stage (data/prepare.py's pipeline with the
decontamination filter) run on the recipe's executor (launch/executors.py), then a refresh of the
run's provenance database. On Slurm the same stage is submitted as an array job instead
(launch/slurm_data.py)."""

from __future__ import annotations

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.logs import quiet_datatrove
from qwen3_recipe.data.prepare import input_files, prepare_pipeline
from qwen3_recipe.data.stages import Stage
from qwen3_recipe.launch.executors import run_stages
from qwen3_recipe.provenance.database import build_database


def prepare_stages(p: PlannedJob, plan: Plan) -> list[Stage]:
    return [Stage("", prepare_pipeline(plan, p, decont_step(plan, p)), input_files(plan, p))]


def run_prepare(p: PlannedJob, plan: Plan) -> None:
    quiet_datatrove()
    run_stages(plan, p, prepare_stages(p, plan))
    build_database(plan.run_dir)


def decont_step(plan: Plan, p: PlannedJob):
    """The decontamination filter for a data job, with its n-gram index built once per run."""
    cfg = plan.loaded.recipe.data.decontamination
    benchmarks = p.job.config["decontamination"] and sorted(
        k.split(":", 1)[1] for k in p.job.inputs if k.startswith("benchmark:"))
    if not benchmarks:
        return None
    from qwen3_recipe.data.decont_index import DecontIndexBuilder
    if cfg.method == "datatrove":
        from datatrove.pipeline.decont.n_grams import NGramsDecontConfig

        from qwen3_recipe.data.decont_datatrove import DatatroveDecontFilter
        folder = DecontIndexBuilder(plan).datatrove_index(benchmarks, cfg)
        return DatatroveDecontFilter(str(folder), config=NGramsDecontConfig(n_grams=cfg.n or 13))
    index = DecontIndexBuilder(plan).index_path(benchmarks, cfg)
    from qwen3_recipe.data.decont import DecontaminationFilter
    return DecontaminationFilter(str(index), action=cfg.action)
