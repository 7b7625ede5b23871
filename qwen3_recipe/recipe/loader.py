"""Recipe files to one merged tree: `extends:` inheritance, dotted `--set` overrides, positions.

Merge semantics (documented in README): mappings merge key by key, recursively; lists and
scalars replace the base value whole; a `null` in a child removes the key from its base, so
a stage or source can be deleted. Bases in `extends: [a, b]` apply left to right, then the child.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qwen3_recipe.errors import Loc, Problem, RecipeError
from qwen3_recipe.recipe.yaml_source import KeyPath, RecipeLoader, SourceMap, load_file

EXTENDS_KEY = "extends"


@dataclass
class RawRecipe:
    """The merged, not yet validated recipe with where each value came from."""

    data: dict[str, Any]
    smap: SourceMap
    path: Path
    chain: list[str] = field(default_factory=list)  # files as shown, bases first
    files: list[Path] = field(default_factory=list)  # the same files, absolute
    overrides: list[str] = field(default_factory=list)


def display_path(path: Path) -> str:
    """Paths in messages: relative to the working directory when under it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def _resolve_base(ref: str, parent: Path) -> Path:
    candidate = (parent.parent / ref).resolve()
    if not candidate.exists() and not candidate.suffix:
        candidate = candidate.with_suffix(".yaml")
    return candidate


def _load_with_bases(path: Path, stack: tuple[Path, ...], chain: list[Path]) -> tuple[dict, SourceMap]:
    shown = display_path(path)
    if path in stack:
        cycle = " -> ".join(display_path(p) for p in stack + (path,))
        raise RecipeError([Problem(f"`extends` cycle: {cycle}", EXTENDS_KEY, Loc(shown))])
    data, smap = load_file(path, shown)
    if not isinstance(data, dict):
        raise RecipeError([Problem("a recipe must be a YAML mapping", loc=smap.find(()) or Loc(shown))])
    refs = data.pop(EXTENDS_KEY, None)
    if refs is None:
        chain.append(path)
        return data, smap
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise RecipeError([Problem("must be a path or a list of paths", EXTENDS_KEY,
                                   smap.find((EXTENDS_KEY,)))])
    merged: dict[str, Any] = {}
    merged_map = SourceMap()
    for i, ref in enumerate(refs):
        base = _resolve_base(ref, path)
        if not base.exists():
            loc = smap.find((EXTENDS_KEY, i)) if len(refs) > 1 or isinstance(data, dict) else None
            raise RecipeError([Problem(f"base recipe '{ref}' not found (looked for {display_path(base)})",
                                       EXTENDS_KEY, loc or smap.find((EXTENDS_KEY,)))])
        base_data, base_map = _load_with_bases(base, stack + (path,), chain)
        merge_into(merged, merged_map, base_data, base_map)
    smap.values.pop((EXTENDS_KEY,), None)
    smap.keys.pop((EXTENDS_KEY,), None)
    merge_into(merged, merged_map, data, smap)
    chain.append(path)
    return merged, merged_map


def merge_into(dst: dict, dmap: SourceMap, src: dict, smap: SourceMap, path: KeyPath = ()) -> None:
    """Deep-merge `src` into `dst` (see module doc), moving source locations along."""
    for key, value in src.items():
        here = path + (key,)
        if value is None and key in dst:
            del dst[key]
            dmap.drop_under(here)
        elif isinstance(value, dict) and isinstance(dst.get(key), dict):
            for table, source in ((dmap.keys, smap.keys), (dmap.values, smap.values)):
                if here in source:  # a merged mapping is located where it was last written
                    table[here] = source[here]
            merge_into(dst[key], dmap, value, smap, here)
        else:
            dst[key] = copy.deepcopy(value)
            dmap.drop_under(here)
            n = len(here)
            for table, source in ((dmap.values, smap.values), (dmap.keys, smap.keys)):
                table.update({k: v for k, v in source.items() if k[:n] == here})


def apply_override(data: dict, smap: SourceMap, spec: str) -> None:
    """Apply one `key.path=value` (value parsed as YAML) in place."""
    loc = Loc(f"--set {spec}")
    key, sep, text = spec.partition("=")
    if not sep or not key.strip():
        raise RecipeError([Problem("expected KEY.PATH=VALUE", loc=loc)])
    try:
        value = yaml.load(text, Loader=RecipeLoader) if text.strip() else None  # noqa: S506 (safe loader)
    except yaml.YAMLError as exc:
        raise RecipeError([Problem(f"value is not valid YAML: {exc}", key, loc)]) from None
    parts: list[str | int] = []
    node: Any = data
    names = key.strip().split(".")
    for depth, name in enumerate(names):
        last = depth == len(names) - 1
        if isinstance(node, list):
            if not name.lstrip("-").isdigit() or not -len(node) <= int(name) < len(node):
                raise RecipeError([Problem(f"'{name}' is not an index of this list (length {len(node)})",
                                           ".".join(map(str, parts + [name])), loc)])
            index: str | int = int(name) % len(node)
        elif isinstance(node, dict):
            index = name
        else:
            raise RecipeError([Problem("cannot set a key inside a scalar value",
                                       ".".join(map(str, parts)), loc)])
        parts.append(index)
        if last:
            if value is None and isinstance(node, dict):
                node.pop(index, None)
            else:
                node[index] = value
            smap.drop_under(tuple(parts))
            smap.values[tuple(parts)] = loc
            smap.keys[tuple(parts)] = loc
        else:
            if isinstance(node, dict) and node.get(index) is None:
                node[index] = {}
            node = node[index]


def load_raw(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RawRecipe:
    """Read a recipe file with its bases and apply `--set` overrides, in that order."""
    path = Path(path).resolve()
    files: list[Path] = []
    data, smap = _load_with_bases(path, (), files)
    for spec in overrides:
        apply_override(data, smap, spec)
    return RawRecipe(data=data, smap=smap, path=path, chain=[display_path(f) for f in files],
                     files=files, overrides=list(overrides))
