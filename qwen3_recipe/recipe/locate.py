"""Turn pydantic ValidationErrors into located `Problem`s with did-you-mean suggestions."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from qwen3_recipe.errors import Problem, did_you_mean
from qwen3_recipe.recipe.yaml_source import KeyPath, SourceMap


def _expand(tp: Any) -> list[Any]:
    """Strip Annotated/Optional/Union wrappers into candidate types."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _expand(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [c for arg in get_args(tp) for c in _expand(arg)]
    return [tp]


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is not None and get_origin(field.annotation) is Literal:
        return get_args(field.annotation)[0]
    return None


def allowed_keys(root: type[BaseModel], loc: tuple) -> set[str]:
    """Field names valid at `loc` (a pydantic error loc, union tags included)."""
    candidates: list[Any] = [root]
    for comp in loc:
        step: list[Any] = []
        for cand in (c for t in candidates for c in _expand(t)):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                if comp in cand.model_fields:
                    step.append(cand.model_fields[comp].annotation)
                elif _tag_of(cand) == comp:
                    step.append(cand)
            elif get_origin(cand) is dict and isinstance(comp, str):
                step.append(get_args(cand)[1])
            elif get_origin(cand) is list and isinstance(comp, int):
                step.append(get_args(cand)[0])
        candidates = step or candidates  # unknown component: a union member name, skip it
    keys: set[str] = set()
    for cand in (c for t in candidates for c in _expand(t)):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            keys.update(cand.model_fields)
    return keys


def data_path(data: Any, loc: tuple) -> KeyPath:
    """The part of a pydantic loc that exists in the data (drops union tags/member names)."""
    path: list[str | int] = []
    node = data
    for comp in loc:
        if isinstance(node, dict) and comp in node:
            path.append(comp)
            node = node[comp]
        elif isinstance(node, list) and isinstance(comp, int) and 0 <= comp < len(node):
            path.append(comp)
            node = node[comp]
    return tuple(path)


def _at(data: Any, path: KeyPath) -> Any:
    for key in path:
        data = data[key]
    return data


def _message(err: dict, root: type[BaseModel]) -> tuple[str, str | None]:
    kind, msg, ctx = err["type"], err["msg"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = err["loc"][-1]
        return f"unknown key '{key}'", did_you_mean(key, allowed_keys(root, err["loc"][:-1]))
    if kind == "missing":
        return f"required key '{err['loc'][-1]}' is missing", None
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        return f"unknown type '{ctx.get('tag')}'", did_you_mean(str(ctx.get("tag")), tags)
    if kind == "union_tag_not_found":
        return "missing `type:` (it selects which kind of entry this is)", None
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    if kind != "value_error" and isinstance(value, (str, int, float, bool)) and not isinstance(value, dict):
        msg = f"{msg} (got {value!r})"
    return msg, None


def locate(exc: ValidationError, data: Any, smap: SourceMap, root: type[BaseModel],
           prefix: KeyPath = ()) -> list[Problem]:
    """Every error in `exc`, located in the file it came from."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = data_path(data, loc)
        if err["type"] == "extra_forbidden" or err["type"] == "missing":
            path = data_path(data, loc[:-1]) + (loc[-1],) if err["type"] == "extra_forbidden" else path
        message, hint = _message(err, root)
        if err["type"] == "union_tag_invalid" and isinstance(_at(data, path), dict) and "type" in _at(data, path):
            path += ("type",)
        full = prefix + path
        where = smap.keys.get(full) if err["type"] == "extra_forbidden" else None
        where = where or smap.find(full)
        dotted = ".".join(str(p) for p in (full if err["type"] != "missing" else full + (loc[-1],)))
        if (dotted, message) in seen:
            continue
        seen.add((dotted, message))
        problems.append(Problem(message, dotted, where, hint))
    return problems
