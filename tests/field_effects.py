"""Perturb every leaf of a resolved recipe, one at a time, and see what it changes: the jobs' lowered
artifacts (what the engines are told), their fingerprints, the set of jobs. Used by
tests/test_field_effects.py; `python -m tests.field_effects RECIPE` prints the table."""

from __future__ import annotations

import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from qwen3_recipe.compiler.fingerprint import digest, strip_metadata
from qwen3_recipe.compiler.lowerers import lowerer_for
from qwen3_recipe.compiler.plan import make_plan
from qwen3_recipe.errors import RecipeError
from qwen3_recipe.recipe.schema import Recipe
from qwen3_recipe.recipe.validate import load_recipe

Path_ = tuple[str | int, ...]


@dataclass
class Effect:
    leaf: str
    override: list[str] = field(default_factory=list)
    lowered: set[str] = field(default_factory=set)  # jobs whose lowered artifact changed
    fingerprint: set[str] = field(default_factory=set)  # jobs whose fingerprint changed
    own: set[str] = field(default_factory=set)  # jobs whose own config or inputs changed (not only a parent)
    lost: set[str] = field(default_factory=set)  # lowered jobs whose own config changed, artifact did not
    jobs: set[str] = field(default_factory=set)  # jobs added or removed
    unlowered: set[str] = field(default_factory=set)  # changed jobs of kinds without a lowerer
    invalid: bool = False  # no perturbation of this leaf validates

    @property
    def kind(self) -> str:
        if self.invalid:
            return "invalid"
        if self.lowered or self.jobs:
            return "lowered"
        if self.unlowered:
            return "unlowered"
        return "none"


def leaves(value: Any, path: Path_ = ()) -> list[tuple[Path_, Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in leaves(v, path + (k,))]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, path + (i,))]
    return [(path, value)]


def annotation_at(path: Path_, data: dict) -> Any:
    """The schema type of the value at `path` (unions resolved by the keys/`type` present)."""
    tp: Any = Recipe
    node: Any = data
    for key in path:
        tp = _concrete(tp, node)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = tp.model_fields[key].annotation
        else:
            args = typing.get_args(tp)
            tp = args[-1] if args else Any
        node = node[key] if isinstance(node, (dict, list)) else None
    return _concrete(tp, node)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _concrete(tp: Any, node: Any) -> Any:
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if isinstance(node, dict) and models:
            for m in models:
                kind = m.model_fields.get("type")
                if kind is None or node.get("type") in typing.get_args(kind.annotation):
                    if set(node) <= set(m.model_fields):
                        return m
        return _strip(members[0]) if len(members) == 1 else tp
    return tp


def literals(tp: Any) -> list[Any]:
    out: list[Any] = []
    for arg in typing.get_args(tp) if typing.get_origin(tp) is not typing.Literal else [tp]:
        if typing.get_origin(arg) is typing.Literal:
            out += list(typing.get_args(arg))
        elif typing.get_origin(arg) in (typing.Union, typing.Annotated):
            out += literals(arg)
    return out


def base_types(tp: Any) -> set[Any]:
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return {t for arg in typing.get_args(tp) for t in base_types(arg)}
    return {typing.get_origin(tp) or tp}


def candidates(path: Path_, value: Any, data: dict, parent: Any, names: list[str]) -> list[list[tuple[Path_, Any]]]:
    """Perturbations to try, each a list of (path, new value) set together."""
    tp = annotation_at(path, data)
    kinds = base_types(tp)
    choices = [c for c in literals(tp) if c != value]
    out: list[list[tuple[Path_, Any]]] = [[(path, c)] for c in choices]
    if isinstance(value, bool) or (value is None and bool in kinds):
        out.append([(path, not value)])
    elif isinstance(value, (int, float)):
        for v in ((value * 2, value + 1, value // 2 if isinstance(value, int) else value / 2) if value else (1, 0.5)):
            out.append([(path, v)])
        if isinstance(value, float) and 0 < value < 1:
            out.insert(0, [(path, round(value / 2, 6))])
        if isinstance(parent, dict):  # shares that must sum to 1: swap with a sibling
            out += [[(path, other), (path[:-1] + (k,), value)] for k, other in parent.items()
                    if k != path[-1] and isinstance(other, (int, float)) and other != value][:1]
    elif value is None and (int in kinds or float in kinds):
        out += [[(path, v)] for v in (1, 2, 64, 1000, 0.5)]
    elif isinstance(value, list) and len(value) > 1:
        out += [[(path, value[:-1])], [(path, value[::-1])]]
    elif isinstance(value, list) and value and value[0] in names:
        out += [[(path, [n])] for n in names if n != value[0]]
    elif isinstance(value, str) or (value is None and str in kinds):
        out.append([(path, (value or "") + "x")])
        if int in kinds or float in kinds:  # a keyword beside a number (`alpha: auto`): try numbers
            out += [[(path, v)] for v in (1, 0.5)]
        if value in names:  # a reference: another name of the same sort
            out += [[(path, n)] for n in names if n != value]
    return out


def whole(data: dict, change: list[tuple[Path_, Any]]) -> dict:
    """The changed leaves' parent mapping, as resolved, with the change applied."""
    parent: Any = data
    for key in change[0][0][:-1]:
        parent = parent[key]
    new = dict(parent)
    for p, v in change:
        new[p[-1]] = v
    return new


def override(path: Path_, value: Any) -> str:
    return ".".join(map(str, path)) + "=" + json.dumps(value)


def names_in(loaded) -> list[str]:
    """Strings a reference may name: the recipe's own keys, catalog entries, string values."""
    data = loaded.recipe.model_dump(mode="json")
    found = [k for section in (data["data"]["sources"], data["data"]["mixtures"], data["pretrain"]["stages"],
                               data["posttrain"]["stages"], data["synth"]["jobs"]) for k in section]
    found += sorted(loaded.catalogs.datasets) + sorted(loaded.catalogs.evals)
    return list(dict.fromkeys(found))


@dataclass
class Snapshot:
    fingerprint: dict[str, str]
    own: dict[str, str]  # digest of a job's kind, config and inputs, parents left out
    deps: dict[str, list[str]]
    lowered: dict[str, str | None]  # None: the kind has no lowerer yet


def snapshot(recipe: Path, overrides: list[str], run_dir: Path) -> Snapshot:
    plan = make_plan(load_recipe(recipe, overrides), run_dir)
    lowered = {}
    for p in plan.jobs:
        lower = lowerer_for(p.job.kind)
        lowered[p.job.name] = json.dumps(lower(p, plan), sort_keys=True) if lower else None
    return Snapshot({p.job.name: p.job.fingerprint for p in plan.jobs},
                    {p.job.name: digest([p.job.kind, strip_metadata(p.job.config), p.job.inputs]) for p in plan.jobs},
                    {p.job.name: p.job.deps for p in plan.jobs}, lowered)


def compare(effect: Effect, base: Snapshot, new: Snapshot) -> None:
    effect.jobs = set(new.fingerprint) ^ set(base.fingerprint)
    common = set(new.fingerprint) & set(base.fingerprint)
    effect.fingerprint = {j for j in common if new.fingerprint[j] != base.fingerprint[j]}
    effect.own = {j for j in common if new.own[j] != base.own[j]}
    effect.lowered = {j for j in common if new.lowered[j] != base.lowered[j]}
    effect.unlowered = {j for j in effect.own if new.lowered[j] is None}
    # a job whose own config changed must be told something different, whatever its parents did
    effect.lost = {j for j in effect.own - effect.lowered if new.lowered[j] is not None}


def effects(recipe: Path, run_dir: Path) -> list[Effect]:
    loaded = load_recipe(recipe)
    data = loaded.recipe.model_dump(mode="json", exclude={"extends"})
    base = snapshot(recipe, [], run_dir)
    names = names_in(loaded)
    # keys data.languages generated are set through their group (its own leaves are tested there)
    generated = {("data", "sources", src) for g in loaded.languages.values() for src in g.sources.values()}
    generated |= {("data", "filters", int(k.rsplit(".", 1)[1])) for k in loaded.generated}
    out = []
    for path, value in leaves(data):
        if path[:3] in generated:
            continue
        parent: Any = data
        for key in path[:-1]:
            parent = parent[key]
        effect = Effect(".".join(map(str, path)))
        for change in candidates(path, value, data, parent, names):
            try:
                sets = [override(p, v) for p, v in change]
                new = snapshot(recipe, sets, run_dir)
            except RecipeError:
                try:  # a shorthand in the file (a scalar where the schema has a mapping): set the whole parent
                    sets = [override(path[:-1], whole(data, change))]
                    new = snapshot(recipe, sets, run_dir)
                except RecipeError:
                    continue
            effect.override = sets
            compare(effect, base, new)
            if effect.kind != "none":
                break
        else:
            effect.invalid = not effect.override
        out.append(effect)
    return out


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for e in effects(Path(sys.argv[1]), Path(tmp) / "run"):
            print(f"{e.kind:9} {e.leaf:70} {' '.join(e.override)[:60]:60} "
                  f"low={sorted(e.lowered | e.jobs)} own-unlowered={sorted(e.unlowered)} LOST={sorted(e.lost)}")
