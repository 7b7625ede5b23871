"""Every shipped recipe validates, compiles, and satisfies the published JSON Schema."""

import json

import jsonschema
import pytest

from conftest import REPO, RECIPES
from qwen3_recipe.compiler.plan import make_plan
from qwen3_recipe.compiler.rundir import compile_run_dir
from qwen3_recipe.recipe.json_schema import schema_text
from qwen3_recipe.recipe.loader import load_raw
from qwen3_recipe.recipe.validate import load_recipe

SCHEMA_FILE = REPO / "recipes/recipe.schema.json"


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_validates_and_compiles(path, tmp_path):
    loaded = load_recipe(path)
    plan = make_plan(loaded, tmp_path / "run")
    compile_run_dir(plan)
    assert (tmp_path / "run/manifest.json").exists()
    assert len(plan.jobs) >= 10
    assert path.read_text().startswith("# yaml-language-server: $schema=recipe.schema.json")


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_json_schema_accepts_every_shipped_recipe(path):
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator(schema).validate(load_raw(path).data)


def test_json_schema_rejects_unknown_keys():
    schema = json.loads(SCHEMA_FILE.read_text())
    data = load_raw(REPO / "recipes/tiny.yaml").data
    data["pretrain"]["stages"]["s1_general"]["tokns"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)


def test_committed_schema_is_current():
    assert SCHEMA_FILE.read_text() == schema_text(), "run `make schema`"


def test_every_size_recipe_exists():
    names = {p.stem for p in RECIPES}
    assert {"qwen3", "qwen3-report", "tiny", "qwen3-0.6B", "qwen3-8B", "qwen3-30B-A3B", "qwen3-235B-A22B"} <= names


def test_report_recipe_uses_the_report_curriculum():
    r = load_recipe(REPO / "recipes/qwen3-report.yaml").recipe
    s1, s2, s3 = r.pretrain.stages.values()
    assert (s1.tokens, s1.seq_len, s1.rope_theta) == (30 * 10**12, 4096, 1e4)
    assert (s2.tokens, s2.seq_len, s2.seq_len_start) == (5 * 10**12, 4096, None)
    assert (s3.tokens, s3.seq_len, s3.rope_theta) == (500 * 10**9, 32768, 1e6)
    assert sum(s.tokens for s in r.pretrain.stages.values()) == 35_500 * 10**9


def test_brief_recipe_uses_the_brief_curriculum():
    r = load_recipe(REPO / "recipes/qwen3.yaml").recipe
    s1, s2, s3 = r.pretrain.stages.values()
    assert (s1.tokens, s1.seq_len) == (6 * 10**12, 4096)
    assert (s2.tokens, s2.seq_len_start, s2.seq_len) == (8 * 10**12, 8192, 16384)
    assert (s3.tokens, s3.seq_len) == (4 * 10**12, 32768)
    assert r.model.yarn.factor * r.model.yarn.original_max_position_embeddings == 131072
    assert [s.type for s in r.posttrain.stages.values()] == ["sft", "reasoning_rl", "fusion", "general_rl"]
    small = load_recipe(REPO / "recipes/qwen3-0.6B.yaml").recipe
    assert [s.type for s in small.posttrain.stages.values()] == ["distill_offpolicy", "distill_onpolicy"]
