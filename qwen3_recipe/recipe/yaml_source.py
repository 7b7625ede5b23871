"""Safe YAML to plain Python values plus a source map: key path -> location.

PyYAML's composer keeps marks on nodes; we walk the node graph ourselves (like dagster's
pydantic_yaml) so every value and key knows its file, line and column, and so duplicate keys
are errors instead of silent overwrites (dbt does the same).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from qwen3_recipe.errors import Loc, Problem, RecipeError

KeyPath = tuple[str | int, ...]


class SourceMap:
    """Locations of values (`values`) and of mapping keys (`keys`) by key path."""

    __slots__ = ("values", "keys")

    def __init__(self) -> None:
        self.values: dict[KeyPath, Loc] = {}
        self.keys: dict[KeyPath, Loc] = {}

    def find(self, path: KeyPath) -> Loc | None:
        """The location of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            loc = self.values.get(prefix) or self.keys.get(prefix)
            if loc is not None:
                return loc
        return None

    def drop_under(self, path: KeyPath) -> None:
        """Forget every location at or below `path` (a value there was replaced)."""
        n = len(path)
        for table in (self.values, self.keys):
            for key in [k for k in table if k[:n] == path]:
                del table[key]

    def update(self, other: "SourceMap", prefix: KeyPath = ()) -> None:
        for key, loc in other.values.items():
            self.values[prefix + key] = loc
        for key, loc in other.keys.items():
            self.keys[prefix + key] = loc


class RecipeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when available
    """Safe YAML, plus YAML 1.2 floats: `1e-5` and `1e6` are numbers, as in JSON and editors."""


RecipeLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                   re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                   list("-+0123456789"))

_SAFE_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap"}


def _loc(mark: yaml.Mark, file: str) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.smap = SourceMap()
        self.problems: list[Problem] = []
        self._key_nodes: dict[KeyPath, yaml.Node] = {}

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.smap.values[path] = _loc(node.start_mark, self.file)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _SAFE_TAGS:
            self.problems.append(Problem(f"unsupported YAML tag {node.tag}", _dotted(path),
                                         _loc(node.start_mark, self.file)))
            return None
        if isinstance(node, yaml.MappingNode):
            own = {id(k) for k, _ in node.value}
            self.loader.flatten_mapping(node)  # resolves `<<:` merge keys (merged pairs come first)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node, path)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    self.problems.append(Problem("mapping keys must be plain scalars",
                                                 _dotted(path), _loc(key_node.start_mark, self.file)))
                    continue
                key = str(key)
                if key in out and id(key_node) in own and id(self._key_nodes[path + (key,)]) in own:
                    first = self.smap.keys[path + (key,)]
                    self.problems.append(Problem(f"duplicate key '{key}' (first defined at line {first.line})",
                                                 _dotted(path + (key,)), _loc(key_node.start_mark, self.file)))
                    continue
                self._key_nodes[path + (key,)] = key_node
                self.smap.keys[path + (key,)] = _loc(key_node.start_mark, self.file)
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return None
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:  # unsafe or unknown tag
            self.problems.append(Problem(f"unsupported YAML value: {exc.problem}", _dotted(path),
                                         _loc(node.start_mark, self.file)))
            return None


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


def load_text(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document. Raises RecipeError with every located problem."""
    loader = RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, SourceMap()
        walker = _Walker(loader, file)
        data = walker.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _loc(mark, file) if mark else Loc(file)
        raise RecipeError([Problem(f"invalid YAML: {exc.problem or exc.context}", loc=loc)]) from None
    except yaml.reader.ReaderError as exc:  # bad bytes: located by character position
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise RecipeError([Problem(f"invalid YAML: {exc.reason} (character {exc.character!r})",
                                   loc=Loc(file, line, col))]) from None
    except yaml.YAMLError as exc:
        raise RecipeError([Problem(f"invalid YAML: {exc}", loc=Loc(file))]) from None
    finally:
        loader.dispose()
    if walker.problems:
        raise RecipeError(walker.problems)
    return data, walker.smap


def load_file(path: Path, shown_as: str | None = None) -> tuple[Any, SourceMap]:
    name = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([Problem("file not found", loc=Loc(name))]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([Problem(f"cannot read file: {exc}", loc=Loc(name))]) from None
    return load_text(text, name)
