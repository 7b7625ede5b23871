"""Language groups (`data.languages`) lowered into what the rest of the compiler already runs: one
source per language (`<group>_<code>`, the family member `<family>.<code>`), a datatrove language-id
filter per source keeping its own language, and every mixture weight naming the group split over
its languages by the declared rule. Runs on the raw recipe before validation, so everything after
(schema, checks, jobs, fingerprints, provenance) sees plain sources; generated keys are located at
the group's lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from qwen3_recipe.catalog import Catalogs
from qwen3_recipe.errors import Problem, did_you_mean
from qwen3_recipe.recipe.schema.languages import LanguageGroup, LanguageShares
from qwen3_recipe.recipe.yaml_source import KeyPath, SourceMap


@dataclass
class ExpandedGroup:
    """What `plan` shows of a group: its family and rule, its languages' shares and sizes, and the
    source generated for each language."""

    family: str
    rule: str
    shares: dict[str, float]
    tokens: dict[str, int | None]
    sources: dict[str, str]  # code -> generated source name


def language_shares(tokens: dict[str, int | None], rule: LanguageShares) -> dict[str, float]:
    """Shares summing to 1: tokens**temperature (or uniform), then every share raised to the floor
    and the others rescaled over what is left (repeated until none falls below it)."""
    codes = list(tokens)
    raw = {c: 1.0 if rule.rule == "uniform" else float(tokens[c] or 0) ** rule.temperature for c in codes}
    fixed: dict[str, float] = {}
    while True:
        free = [c for c in codes if c not in fixed]
        total = sum(raw[c] for c in free)
        left = 1.0 - sum(fixed.values())
        shares = {c: left * raw[c] / total if total else left / len(free) for c in free}
        low = [c for c in free if shares[c] < rule.floor]
        if not low:
            return {c: fixed.get(c, shares.get(c, 0.0)) for c in codes}
        fixed |= {c: rule.floor for c in low}


def expand_languages(data: dict[str, Any], smap: SourceMap, catalogs: Catalogs
                     ) -> tuple[dict[str, ExpandedGroup], dict[str, str], list[Problem]]:
    """Expand `data.languages` in place. Returns the groups, {generated filter setting: the group
    setting it came from}, and located problems (a malformed group is left for the schema to report)."""
    section = data.get("data") if isinstance(data.get("data"), dict) else {}
    groups = section.get("languages")
    if not isinstance(groups, dict) or not groups:
        return {}, {}, []
    problems: list[Problem] = []

    def err(path: KeyPath, message: str, hint: str | None = None) -> None:
        problems.append(Problem(message, ".".join(map(str, path)), smap.find(path), hint))

    expanded, origins, malformed = {}, {}, {}
    lowerable = isinstance(section.get("sources", {}), dict) and isinstance(section.get("filters", []), list)
    for name, raw_group in groups.items():
        base: KeyPath = ("data", "languages", name)
        listed = raw_group.get("languages") if isinstance(raw_group, dict) else None
        flags = [i for i, c in enumerate(listed) if isinstance(c, bool)] if isinstance(listed, list) else []
        for i in flags:  # YAML 1.1 reads a bare no (Norwegian), yes, on, off as booleans
            err(base + ("languages", i), f"YAML read this code as {str(listed[i]).lower()}: quote it (\"no\")")
        if flags:
            continue
        try:
            group = LanguageGroup.model_validate(raw_group)
            if not isinstance(name, str) or not lowerable:
                raise ValueError(name)
        except (ValidationError, ValueError):
            malformed[name] = raw_group  # left for the schema to report, located
            continue
        before = len(problems)  # the group is lowered only if none of the checks below objects
        family = catalogs.datasets.get(group.family)
        if family is None or not family.spec.family:
            families = [n for n, e in catalogs.datasets.items() if e.spec.family]
            err(base + ("family",), f"unknown family '{group.family}'" if family is None else
                f"'{group.family}' is a dataset, not a family (an entry with `family:` members)",
                did_you_mean(group.family, families) or f"families: {', '.join(families) or 'none'}")
            continue
        codes = list(dict.fromkeys(family.spec.family if group.languages == "all" else group.languages))
        for i in [i for i, c in enumerate(codes) if c not in family.spec.family]:
            err(base + ("languages", i), f"'{codes[i]}' is not a member of family '{group.family}'",
                did_you_mean(codes[i], family.spec.family))
        if group.language_id.backend == "lingua":
            from qwen3_recipe.posttrain.language import known
            for i in [i for i, c in enumerate(codes) if not known([c])]:
                err(base + ("languages", i) if group.languages != "all" else base + ("language_id", "backend"),
                    f"lingua has no model for '{codes[i]}' (its codes are ISO 639-1, e.g. nb for Norwegian "
                    "Bokmål): leave it out or use backend fasttext")
        if name in (section.get("sources") or {}):
            err(base, f"the group '{name}' has the name of a source in data.sources: a mixture weight "
                "naming it would be ambiguous")
        if group.language_id.backend == "fasttext" and group.language_id.model_path is None:
            err(base + ("language_id",), "fastText language id needs a local model: set "
                f"data.languages.{name}.language_id.model_path (lid.176.bin; nothing is downloaded), "
                "or backend: lingua")
        if group.shares.floor * len(codes) > 1:
            err(base + ("shares", "floor"), f"a floor of {group.shares.floor:g} for {len(codes)} languages "
                "is more than the whole group")
        tokens = {c: catalogs.datasets[f"{group.family}.{c}"].spec.tokens for c in codes if c in family.spec.family}
        unsized = [c for c, t in tokens.items() if not t]
        if group.shares.rule == "tokens" and unsized:
            err(base + ("shares", "rule"), f"shares by tokens need every member's size; family '{group.family}' "
                f"({family.loc}) gives none for {', '.join(unsized)}")
        sources = {c: f"{name}_{c}" for c in codes}
        for s in [s for s in sources.values() if s in (section.get("sources") or {})]:
            err(("data", "sources", s), f"source '{s}' is also generated by data.languages.{name}")
        if len(problems) > before:
            continue
        shares = language_shares(tokens, group.shares)
        _lower(section, smap, name, group, sources, shares, origins)
        expanded[name] = ExpandedGroup(group.family, _rule(group.shares), shares, tokens, sources)
    section["languages"] = malformed  # the rest is lowered: a reload must not expand it twice
    return expanded, origins, problems


def _rule(shares: LanguageShares) -> str:
    rule = "equal" if shares.rule == "uniform" else f"by tokens^{shares.temperature:g}"
    return f"{rule}, floor {shares.floor:.2%}" if shares.floor else rule


def _lower(section: dict, smap: SourceMap, name: str, group: LanguageGroup, sources: dict[str, str],
           shares: dict[str, float], origins: dict[str, str]) -> None:
    base: KeyPath = ("data", "languages", name)
    at = smap.find(base)
    section.setdefault("sources", {})
    filters = section.setdefault("filters", [])
    lid = smap.find(base + ("language_id", "model_path")) or at
    for code, source in sources.items():
        section["sources"][source] = f"{group.family}.{code}"
        smap.keys[("data", "sources", source)] = smap.values[("data", "sources", source)] = at
        path: KeyPath = ("data", "filters", len(filters))
        lid_cfg = group.language_id.model_dump(exclude_none=True)
        filters.append({"type": "language", "name": f"language_id_{code}", "sources": [source],
                        "languages": [code]} | lid_cfg)
        smap.values[path] = smap.values[path + ("model_path",)] = lid
        origins[".".join(map(str, path))] = ".".join(base + ("language_id",))
    mixtures = section.get("mixtures")
    for mix_name, mix in (mixtures if isinstance(mixtures, dict) else {}).items():
        weights = mix.get("weights") if isinstance(mix, dict) else None
        if not isinstance(weights, dict) or name not in weights or not isinstance(weights[name], (int, float)):
            continue
        key_at = smap.keys.get(("data", "mixtures", mix_name, "weights", name))
        spread = {}
        for key, weight in weights.items():  # in place of the group's key, in its position
            if key != name:
                spread[key] = weight
                continue
            for code, source in sources.items():
                spread[source] = weight * shares[code]
                smap.keys[("data", "mixtures", mix_name, "weights", source)] = key_at
        mix["weights"] = spread
