"""The compiled pretraining job of every shipped recipe builds a torchtitan `Trainer.Config` that
torchtitan accepts, and the model it describes (built on the meta device, not trained) has the
parameter count the preset implies; stage settings land where torchtitan reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torchtitan")

import torch  # noqa: E402

from qwen3_recipe.compiler.plan import make_plan  # noqa: E402
from qwen3_recipe.recipe.validate import load_recipe  # noqa: E402

RECIPES = sorted(Path("recipes").glob("*.yaml"))


def stage_configs(recipe: Path, tmp_path: Path, overrides: list[str] = ()):
    from qwen3_recipe.train.job import trainer_config
    from qwen3_recipe.train.pretrain import stage_job

    loaded = load_recipe(recipe, list(overrides))
    plan = make_plan(loaded, tmp_path / "run")
    jobs = [stage_job(p, plan) for p in plan.jobs if p.job.kind == "pretrain"]
    return loaded, jobs, [trainer_config(j) for j in jobs]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_every_recipe_builds_a_trainer_config_with_the_preset_size(recipe, tmp_path):
    loaded, jobs, configs = stage_configs(recipe, tmp_path)
    assert configs, "every shipped recipe pretrains"
    for job, cfg in zip(jobs, configs):
        assert cfg.training.seq_len == job["seq_len"] and cfg.training.steps == job["steps"]
        rope = cfg.model_spec.model.layers[0].attention.rope
        assert rope.theta == job["arch"]["rope_theta"]
    with torch.device("meta"):
        model = configs[0].model_spec.model.build()
    assert sum(p.numel() for p in model.parameters()) == loaded.arch.total_params
    if loaded.recipe.model.preset and not loaded.recipe.model.arch:
        # a preset used as is trains torchtitan's own flavor
        assert configs[0].model_spec.flavor == loaded.recipe.model.preset.removeprefix("Qwen3-")


def test_stage_lowering_follows_the_recipe(tmp_path):
    """qwen3-report: S1/S2 at 4K, S3 at 32K with ABF (RoPE base 1e6); steps = tokens / batch."""
    loaded, jobs, configs = stage_configs(Path("recipes/qwen3-report.yaml"), tmp_path, [
        "execution.parallelism.tp=8", "execution.parallelism.ep=8", "execution.activation_checkpointing=full",
        "execution.compile=true"])
    stages = loaded.recipe.pretrain.stages
    for (name, stage), job, cfg in zip(stages.items(), jobs, configs):
        batch = cfg.training.global_batch_size * cfg.training.seq_len
        assert cfg.training.steps == -(-stage.tokens // batch), name
        assert cfg.training.seq_len == stage.seq_len
        assert cfg.parallelism.tensor_parallel_degree == 8 and cfg.parallelism.expert_parallel_degree == 8
        assert cfg.compile.enable and type(cfg.activation_checkpoint).__qualname__ == "FullAC.Config"
        assert cfg.training.mixed_precision_param == "bfloat16"  # the report's bf16 default
    thetas = [c.model_spec.model.layers[0].attention.rope.theta for c in configs]
    assert thetas[0] == thetas[1] < thetas[-1] == 1e6
    # each later stage warm-starts from the previous stage's export, in its own dump folder
    assert jobs[0]["checkpoint"]["initial_load_path"] is None
    for prev, job in zip(jobs, jobs[1:]):
        assert job["checkpoint"]["initial_load_path"] == str(Path(prev["dump_folder"]).parent / "hf")
        assert job["dump_folder"] != prev["dump_folder"]


def test_custom_moe_architecture_builds(tmp_path):
    """An architecture that is no stock flavor (here a small MoE) is built from torchtitan's builders."""
    from qwen3_recipe.train.model import model_spec

    arch = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 32,
            "intermediate_size": 0, "vocab_size": 512, "tie_embeddings": False, "rope_theta": 1e4,
            "rms_norm_eps": 1e-6, "max_position_embeddings": 256, "num_experts": 4,
            "num_experts_per_tok": 2, "moe_intermediate_size": 48}
    from qwen3_recipe.presets import Arch
    with torch.device("meta"):
        model = model_spec(arch).model.build()
    fields = {k: v for k, v in arch.items() if k in Arch.__dataclass_fields__}
    assert sum(p.numel() for p in model.parameters()) == Arch(**fields).total_params
