"""`data.languages`: many languages from one catalog family, their shares set by a declared rule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qwen3_recipe.recipe.schema.common import Float, Fraction, Section


class LanguageShares(Section):
    """How a mixture weight naming the group is split over its languages."""

    rule: Literal["tokens", "uniform"] = "tokens"
    """`tokens`: in proportion to each language's available tokens (its catalog `tokens`) raised to
    `temperature`; `uniform`: equal shares."""
    temperature: Float = Field(0.3, gt=0, le=1)
    """1 keeps the data's own proportions; smaller flattens them toward uniform (mT5 used 0.3)."""
    floor: Fraction = 0.0
    """Every language gets at least this share of the group's weight (the rest is rescaled)."""


class LanguageIdSettings(Section):
    """datatrove's fastText language filter on every language's source, keeping its own language."""

    backend: Literal["fasttext", "lingua"] = "fasttext"
    """`fasttext` (datatrove's LanguageFilter, lid.176.bin) or `lingua` (no model file)."""
    model_path: str | None = None
    """Local fastText model (lid.176.bin); required for fasttext: nothing is downloaded."""
    threshold: Fraction = 0.65
    """The least confidence in a document's language for it to be kept."""


class LanguageGroup(Section):
    """Sources `<group>_<code>`, one per language of a catalog family, each read from the family's
    member entry and checked by language id; a mixture weight naming the group is spread over them."""

    family: str
    """A datasets_spec/ entry with a `family` of member languages (e.g. fineweb-2)."""
    languages: list[str] | Literal["all"] = "all"
    """Member codes (the language id's labels: de, fr, ...), or every member of the family."""
    shares: LanguageShares = Field(default_factory=LanguageShares)
    language_id: LanguageIdSettings = Field(default_factory=LanguageIdSettings)
