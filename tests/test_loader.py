"""YAML loading: positions, extends chains, merge semantics, overrides, YAML-level errors."""

import pytest

from conftest import REPO, write
from qwen3_recipe.errors import RecipeError
from qwen3_recipe.recipe.loader import load_raw
from qwen3_recipe.recipe.validate import load_recipe


def test_extends_chain_resolves_and_merges(tmp_path):
    loaded = load_recipe(REPO / "recipes/qwen3-0.6B.yaml")
    assert loaded.raw.chain == ["recipes/qwen3.yaml", "recipes/qwen3-small.yaml", "recipes/qwen3-0.6B.yaml"]
    r = loaded.recipe
    assert r.name == "qwen3-0.6B" and r.model.preset == "Qwen3-0.6B"
    assert r.model.yarn.factor == 4  # inherited from qwen3.yaml
    assert list(r.posttrain.stages) == ["distill_offpolicy", "distill_onpolicy"]  # null deleted the rest
    assert r.synth.jobs == {}
    assert r.pretrain.stages["s1_general"].tokens == 6 * 10**12


def test_merge_semantics_mappings_merge_lists_replace_null_deletes(tmp_path):
    write(tmp_path / "base.yaml", """
        a: {x: 1, y: [1, 2], z: {deep: true, keep: 1}}
        b: 2
    """)
    write(tmp_path / "mid.yaml", """
        extends: base.yaml
        a: {y: [3], z: {deep: false}}
    """)
    write(tmp_path / "child.yaml", """
        extends: [mid.yaml]
        b: null
        c: 3
    """)
    raw = load_raw(tmp_path / "child.yaml")
    assert raw.data == {"a": {"x": 1, "y": [3], "z": {"deep": False, "keep": 1}}, "c": 3}
    assert raw.smap.find(("a", "y")).file.endswith("mid.yaml")
    assert raw.smap.find(("a", "x")).file.endswith("base.yaml")
    assert raw.smap.find(("a", "z", "deep")).line == 2


def test_set_overrides_parse_yaml_values_and_are_located(tmp_path):
    loaded = load_recipe(REPO / "recipes/tiny.yaml", ["pretrain.stages.s1_general.tokens=2M",
                                                       "data.filters.0.min_chars=10",
                                                       "evals.thinking_budgets=[8, 16]"])
    assert loaded.recipe.pretrain.stages["s1_general"].tokens == 2_000_000
    assert loaded.recipe.data.filters[0].min_chars == 10
    assert loaded.recipe.evals.thinking_budgets == [8, 16]
    with pytest.raises(RecipeError) as err:
        load_recipe(REPO / "recipes/tiny.yaml", ["pretrain.stages.s1_general.tokens=-"])
    assert "--set pretrain.stages.s1_general.tokens=-" in str(err.value)


@pytest.mark.parametrize("spec,message", [
    ("novalue", "expected KEY.PATH=VALUE"),
    ("data.filters.9.x=1", "not an index"),
    ("name.inner=1", "inside a scalar"),
    ("seed=[1", "not valid YAML"),
])
def test_bad_overrides(spec, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(REPO / "recipes/tiny.yaml", [spec])


def test_duplicate_keys_are_errors_with_both_lines(tmp_path):
    path = write(tmp_path / "dup.yaml", """
        name: a
        seed: 1
        seed: 2
    """)
    with pytest.raises(RecipeError) as err:
        load_raw(path)
    text = str(err.value)
    assert "dup.yaml:3:1" in text and "duplicate key 'seed'" in text and "line 2" in text


def test_yaml_syntax_error_is_located(tmp_path):
    path = write(tmp_path / "broken.yaml", """
        name: a
        model: {preset: [Qwen3-8B
    """)
    with pytest.raises(RecipeError) as err:
        load_raw(path)
    assert "broken.yaml:3" in str(err.value) and "invalid YAML" in str(err.value)


def test_unsafe_tags_are_refused(tmp_path):
    path = write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(RecipeError, match="unsupported YAML (tag|value)"):
        load_raw(path)


def test_extends_cycle_and_missing_base(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_raw(tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(RecipeError, match="base recipe 'nowhere.yaml' not found") as err:
        load_raw(tmp_path / "c.yaml")
    assert "c.yaml:1" in str(err.value)


def test_anchors_and_merge_keys_work(tmp_path):
    write(tmp_path / "anch.yaml", """
        base: &b {x: 1, y: 2}
        other:
          <<: *b
          y: 3
    """)
    assert load_raw(tmp_path / "anch.yaml").data["other"] == {"x": 1, "y": 3}


def test_unsafe_scalar_tag_is_refused(tmp_path):
    path = write(tmp_path / "evil2.yaml", "name: !!python/name:os.system ''\n")
    with pytest.raises(RecipeError, match="unsupported YAML"):
        load_raw(path)
