"""Find and load catalog folders; every entry keeps the file and line it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from qwen3_recipe.catalog.specs import DatasetSpec, EvalSpec
from qwen3_recipe.errors import Loc, Problem, RecipeError
from qwen3_recipe.recipe.loader import display_path
from qwen3_recipe.recipe.locate import locate
from qwen3_recipe.recipe.yaml_source import load_file

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T", bound=BaseModel)


@dataclass
class Entry(Generic[T]):
    name: str
    spec: T
    file: Path
    loc: Loc

    def local_path(self) -> Path | None:
        path = getattr(self.spec, "path", None)
        return (self.file.parent / path).resolve() if path else None


@dataclass
class Catalogs:
    datasets: dict[str, Entry[DatasetSpec]] = field(default_factory=dict)
    evals: dict[str, Entry[EvalSpec]] = field(default_factory=dict)
    datasets_dir: Path | None = None
    evals_dir: Path | None = None


def find_dir(name: str, start: Path, explicit: str | None) -> Path | None:
    """`explicit` (relative to `start`), else the nearest `name/` above `start`, else the package's."""
    if explicit:
        return (start / explicit).resolve()
    for parent in (start, *start.parents):
        if (parent / name).is_dir():
            return parent / name
    shipped = PACKAGE_ROOT / name
    return shipped if shipped.is_dir() else None


_cache: dict[tuple, tuple[dict, list[Problem]]] = {}


def _load_dir(folder: Path | None, model: type[T], problems: list[Problem]) -> dict[str, Entry[T]]:
    """Entries of every YAML file in `folder`, cached per process until a file changes."""
    if folder is None or not folder.is_dir():
        return {}
    files = sorted(folder.glob("*.yaml"))
    key = (model, tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    if key not in _cache:
        found: list[Problem] = []
        _cache[key] = (_read_dir(files, model, found), found)
    entries, found = _cache[key]
    problems.extend(found)
    return dict(entries)


def _read_dir(files: list[Path], model: type[T], problems: list[Problem]) -> dict[str, Entry[T]]:
    entries: dict[str, Entry[T]] = {}
    for file in files:
        try:
            data, smap = load_file(file, display_path(file))
        except RecipeError as exc:
            problems.extend(exc.problems)
            continue
        if not isinstance(data, dict):
            problems.append(Problem("a catalog file must map names to entries", loc=Loc(display_path(file))))
            continue
        for name, raw in data.items():
            loc = smap.keys.get((name,)) or Loc(display_path(file))
            if name in entries:
                problems.append(Problem(f"'{name}' is already defined in {display_path(entries[name].file)}",
                                        name, loc))
                continue
            try:
                spec = model.model_validate(raw if raw is not None else {})
            except ValidationError as exc:
                problems.extend(locate(exc, raw, smap, model, (name,)))
                continue
            entries[name] = Entry(name, spec, file, loc)
            for code, member in (getattr(spec, "family", None) or {}).items():
                try:
                    entries[f"{name}.{code}"] = Entry(f"{name}.{code}", member_spec(spec, member, code), file,
                                                      smap.keys.get((name, "family", code)) or loc)
                except ValidationError as exc:
                    problems.extend(locate(exc, raw, smap, model, (name, "family", code)))
    return entries


def member_spec(family: DatasetSpec, member, code: str) -> DatasetSpec:
    """A family member's entry: the family's keys, the member's over them, its one language."""
    update = {k: v for k, v in member.model_dump().items() if v is not None and k != "words"}
    if "tokens" not in update and member.words is not None and family.tokens_per_word:
        update["tokens"] = int(member.words * family.tokens_per_word)
    base = family.model_dump(exclude={"family"}, exclude_unset=True)
    return DatasetSpec.model_validate(base | update | {"languages": [code]})


def load_catalogs(recipe_dir: Path, datasets: str | None = None, evals: str | None = None) -> Catalogs:
    problems: list[Problem] = []
    ddir = find_dir("datasets_spec", recipe_dir, datasets)
    edir = find_dir("evals", recipe_dir, evals)
    cat = Catalogs(_load_dir(ddir, DatasetSpec, problems), _load_dir(edir, EvalSpec, problems), ddir, edir)
    if problems:
        raise RecipeError(problems)
    return cat
