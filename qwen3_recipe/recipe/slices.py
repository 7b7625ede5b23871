"""Mixture weight keys: a source (`web`), or a label slice of a source or of every source
(`web[edu>=3]`, `*[domain=math]`, `web[edu>=3,domain=news|science]`; conditions joined by `,` all
hold). A slice's conditions read the labels `quality.label` predicted (data.quality.dimensions):
a scale compares with `>=`, `>`, `<=`, `<`, `=`, `!=`; a label set with `=` or `!=` and one label or
several joined by `|`. A document without the label is in no slice.

Which key a document is drawn under: the first slice, in the order the weights are written, whose
source and conditions it matches; otherwise its plain source key, if the weights have one (so `web`
beside `web[edu>=3]` means the rest of web); otherwise it is not in the mixture. Pure Python: the
recipe checks, the compiler, the mix job and the plan's supply check all use it."""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY = re.compile(r"^(?P<source>\*|[^\[\]*]+)\[(?P<conditions>[^\[\]]*)\]$")
CONDITION = re.compile(r"^(?P<dimension>[a-z][a-z0-9_]*)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>\S(?:.*\S)?)$")
ORDER_OPS = (">=", ">", "<=", "<")


@dataclass(frozen=True)
class Condition:
    dimension: str
    op: str
    value: str

    @property
    def choices(self) -> list[str]:
        return [v.strip() for v in self.value.split("|")]

    def holds(self, labels: dict) -> bool:
        have = labels.get(self.dimension)
        if have is None:
            return False
        if isinstance(have, str):
            inside = have in self.choices
        else:
            wanted = [float(v) for v in self.choices]
            if self.op in ORDER_OPS:
                bound = wanted[0]
                return {">=": have >= bound, ">": have > bound, "<=": have <= bound, "<": have < bound}[self.op]
            inside = any(abs(have - w) < 1e-9 for w in wanted)
        return inside if self.op == "=" else not inside


@dataclass(frozen=True)
class WeightKey:
    key: str
    source: str | None
    """The source, or None for `*` (every source)."""
    conditions: tuple[Condition, ...] = ()

    @property
    def is_slice(self) -> bool:
        return bool(self.conditions)

    def sources(self, every: list[str]) -> list[str]:
        return list(every) if self.source is None else [self.source]

    def takes(self, source: str, labels: dict) -> bool:
        return (self.source is None or self.source == source) and all(c.holds(labels) for c in self.conditions)


def parse_key(key: str) -> WeightKey:
    """A weight key; ValueError saying what is wrong with it."""
    if "[" not in key and "]" not in key:
        if key == "*":
            raise ValueError("`*` needs a label condition: `*[domain=math]`")
        return WeightKey(key, key)
    m = KEY.match(key.strip())
    if not m:
        raise ValueError(f"'{key}' is not a source or a label slice (`web[edu>=3]`, `*[domain=math]`)")
    conditions = []
    for part in m["conditions"].split(","):
        c = CONDITION.match(part.strip())
        if not c:
            raise ValueError(f"'{part.strip()}' in '{key}' is not a label condition (`edu>=3`, `domain=math|code`)")
        cond = Condition(c["dimension"], c["op"], c["value"])
        if cond.op in ORDER_OPS and len(cond.choices) > 1:
            raise ValueError(f"'{part.strip()}' in '{key}': `{cond.op}` takes one number")
        conditions.append(cond)
    source = m["source"].strip()
    return WeightKey(key, None if source == "*" else source, tuple(conditions))


def parse_keys(keys) -> list[WeightKey]:
    return [parse_key(k) for k in keys]


def assign(source: str, labels: dict, keys: list[WeightKey]) -> str | None:
    """The key a document of `source` with `labels` is drawn under (module docstring), or None."""
    for k in keys:
        if k.is_slice and k.takes(source, labels):
            return k.key
    return source if any(not k.is_slice and k.source == source for k in keys) else None


def key_sources(keys: list[WeightKey], every: list[str]) -> list[str]:
    """The sources a mixture draws from, in recipe order."""
    wanted = {s for k in keys for s in k.sources(every)}
    return [s for s in every if s in wanted]
