"""The front door: a recipe path (+ overrides) to a validated recipe, or every located problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from qwen3_recipe.catalog import Catalogs, load_catalogs
from qwen3_recipe.errors import Loc, Problem, RecipeError
from qwen3_recipe.presets import Arch, resolve_arch
from qwen3_recipe.recipe.checks import check_recipe
from qwen3_recipe.recipe.languages import ExpandedGroup, expand_languages
from qwen3_recipe.recipe.loader import RawRecipe, load_raw
from qwen3_recipe.recipe.locate import locate
from qwen3_recipe.recipe.schema import Recipe
from qwen3_recipe.recipe.serving_checks import serving_problems


@dataclass
class LoadedRecipe:
    raw: RawRecipe
    recipe: Recipe
    catalogs: Catalogs
    arch: Arch
    languages: dict[str, ExpandedGroup] = field(default_factory=dict)
    """data.languages as lowered (recipe/languages.py)."""
    generated: dict[str, str] = field(default_factory=dict)
    """A generated filter's setting -> the group setting it came from (for located errors)."""

    @property
    def path(self) -> Path:
        return self.raw.path


def _sort_key(p: Problem) -> tuple:
    loc = p.loc or Loc("")
    return (loc.file.startswith("--set"), loc.file, loc.line, loc.col, p.path)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedRecipe:
    """Load, merge, validate and cross-check a recipe. Raises RecipeError with all problems."""
    raw = load_raw(path, overrides)
    problems: list[Problem] = []
    recipe: Recipe | None = None
    catalog_cfg = raw.data.get("catalog") if isinstance(raw.data.get("catalog"), dict) else {}
    try:
        catalogs = load_catalogs(raw.path.parent, catalog_cfg.get("datasets"), catalog_cfg.get("evals"))
    except RecipeError as exc:
        problems.extend(exc.problems)
        catalogs = Catalogs()
    languages, generated, expand_problems = expand_languages(raw.data, raw.smap, catalogs)
    problems.extend(expand_problems)
    try:
        recipe = Recipe.model_validate(raw.data)
    except ValidationError as exc:
        problems.extend(locate(exc, raw.data, raw.smap, Recipe))
    checked = check_recipe(raw.data, raw.smap, catalogs)
    explained = {c.path for c in checked}  # a check that names a key says more than the schema's "extra key"
    problems = [p for p in problems if p.path not in explained] + checked
    if problems or recipe is None:
        raise RecipeError(sorted(problems, key=_sort_key))
    arch = resolve_arch(recipe.model.preset,
                        recipe.model.arch.model_dump() if recipe.model.arch else None)
    served = serving_problems(recipe, raw.smap, arch)  # needs defaults filled in: on the validated recipe
    if served:
        raise RecipeError(sorted(served, key=_sort_key))
    return LoadedRecipe(raw, recipe, catalogs, arch, languages, generated)
