"""Property: however a valid recipe is mutated, loading and planning it either succeeds or
raises RecipeError whose every problem has a location - never another exception."""

from __future__ import annotations

import copy
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from qwen3_recipe.compiler.plan import make_plan
from qwen3_recipe.errors import RecipeError
from qwen3_recipe.recipe.loader import load_raw
from qwen3_recipe.recipe.validate import load_recipe

BASES = {name: load_raw(REPO / f"recipes/{name}.yaml").data for name in ("tiny", "qwen3-0.6B")}
SETTINGS = settings(max_examples=1000, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**40, 2**64), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["4K", "32k", "18T", "-1", "0", "1e400", "tiny_web", "sft",
                                           "Qwen3-8B", "s1_general", "think", "general", "", "nan"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def parent_and_key(tree, path):
    node = tree
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


@st.composite
def mutated(draw):
    tree = copy.deepcopy(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 3))):
        candidates = [p for p in paths(tree) if p]
        path = draw(st.sampled_from(candidates))
        parent, key = parent_and_key(tree, path)
        action = draw(st.sampled_from(["replace", "delete", "add_key", "rename"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "add_key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif action == "rename" and isinstance(parent, dict):
            parent[str(key)[:-1] + draw(st.sampled_from("xs_"))] = parent.pop(key)
    return tree


def check_loads_or_locates(path):
    try:
        make_plan(load_recipe(path), path.parent / "run")
    except RecipeError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.loc is not None and problem.loc.file, problem.render()
            assert problem.loc.line >= 1 or problem.loc.file.startswith("--set"), problem.render()


def _safe_dump(tree) -> str:
    def clean(v):  # YAML has no NaN literal that round-trips through every loader; keep it as text
        if isinstance(v, float) and math.isnan(v):
            return ".nan"
        return v
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, default_style=None) if tree else "{}\n"


@SETTINGS
@given(tree=mutated())
def test_mutated_recipes_fail_only_with_located_recipe_errors(tree, tmp_path_factory):
    folder = tmp_path_factory.mktemp("m")
    recipe = folder / "recipe.yaml"
    tree.setdefault("catalog", {}) if isinstance(tree.get("catalog", {}), dict) else None
    if isinstance(tree.get("catalog"), dict):
        tree["catalog"].setdefault("datasets", str(REPO / "datasets_spec"))
        tree["catalog"].setdefault("evals", str(REPO / "evals"))
    recipe.write_text(_safe_dump(tree))
    check_loads_or_locates(recipe)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_text_level_corruption_is_located(data, tmp_path_factory):
    text = (REPO / "recipes/tiny.yaml").read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(text)))
        junk = data.draw(st.sampled_from([":", "- ", "  ", "\n", "{", "]", "&a", "*a", "!!python/none", "\t", "'", "#",
                                          "<<: 1\n", "x: 1\n", "\x00"]))
        cut = data.draw(st.integers(0, 3))
        text = text[:pos] + junk + text[pos + cut:]
    folder = tmp_path_factory.mktemp("t")
    (folder / "recipe.yaml").write_text(text.replace("name: tiny", "name: tiny\ncatalog: {datasets: "
                                                     f"{REPO / 'datasets_spec'}, evals: {REPO / 'evals'}}}", 1))
    check_loads_or_locates(folder / "recipe.yaml")


def test_the_unmutated_bases_are_valid(tmp_path):
    for name in BASES:
        load_recipe(REPO / f"recipes/{name}.yaml")
    with pytest.raises(RecipeError):
        load_recipe(REPO / "pyproject.toml")
