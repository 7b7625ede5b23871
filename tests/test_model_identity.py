"""Request-cache keys name the model by what it is, not by where it lives: a retrained stage or
replaced weights are a new model, so synth, eval and annotation jobs never serve an older model's
generations from their (kept) caches."""
from pathlib import Path
from types import SimpleNamespace

from qwen3_recipe.synth.job import teacher_id


def test_stage_id_follows_the_stage_fingerprint(tmp_path: Path):
    plan = SimpleNamespace(run_dir=tmp_path, fingerprints={"pretrain.s3": "aaaa", "posttrain.rl": "bbbb"})
    assert teacher_id(plan, {"stage": "s3"}) == "stage:s3@aaaa"
    assert teacher_id(plan, {"stage": "rl"}) == "stage:rl@bbbb"
    plan.fingerprints["posttrain.rl"] = "cccc"  # the stage was retrained under another configuration
    assert teacher_id(plan, {"stage": "rl"}) == "stage:rl@cccc"


def test_local_model_id_changes_with_its_files(tmp_path: Path):
    plan = SimpleNamespace(run_dir=tmp_path, fingerprints={})
    model = tmp_path / "teacher"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"0" * 16)
    first = teacher_id(plan, {"path": str(model)})
    assert first.startswith(str(model.resolve()) + "@") and teacher_id(plan, {"path": str(model)}) == first
    (model / "model.safetensors").write_bytes(b"1" * 32)  # new weights at the same path
    assert teacher_id(plan, {"path": str(model)}) != first
    assert teacher_id(plan, {"path": "Qwen/Qwen3-0.6B"}) == "Qwen/Qwen3-0.6B"  # a hub id is its own name


def test_engines_load_exports_without_yarn_when_requests_fit_the_native_window(tmp_path: Path):
    """Static YaRN changes logits at every length; torchtitan trains without it. Short requests get
    the export as trained (a linked view without rope_scaling), long ones get YaRN."""
    import json

    from qwen3_recipe.synth.model_view import model_for
    export = tmp_path / "hf"
    export.mkdir()
    config = {"rope_theta": 1e6, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                  "original_max_position_embeddings": 1024}}
    (export / "config.json").write_text(json.dumps(config))
    (export / "model.safetensors").write_bytes(b"w")
    view = Path(model_for(export, 1024))
    assert view != export and "rope_scaling" not in json.loads((view / "config.json").read_text())
    assert (view / "model.safetensors").resolve() == (export / "model.safetensors").resolve()
    assert model_for(export, 1025) == export  # longer than the native window: YaRN stays
    assert model_for("Qwen/Qwen3-0.6B", 10) == "Qwen/Qwen3-0.6B"
