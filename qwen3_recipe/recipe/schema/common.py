"""Shared schema pieces: the strict base model, unit-aware numbers, model references."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from qwen3_recipe.units import parse_seq_len, parse_tokens


class Section(BaseModel):
    """Every recipe mapping: unknown keys are errors; attribute docstrings become descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True,
                              validate_default=False, defer_build=True)


def _unit_schema(example: str) -> dict:
    return {"anyOf": [{"type": "integer", "minimum": 0},
                      {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?\s*[a-zA-Z]?$",
                       "examples": [example]}]}


Tokens = Annotated[int, BeforeValidator(parse_tokens), Field(ge=0),
                   WithJsonSchema(_unit_schema("18T"))]
"""A token count: an integer or a decimal unit (4M, 500B, 18T)."""

PositiveTokens = Annotated[int, BeforeValidator(parse_tokens), Field(gt=0),
                           WithJsonSchema(_unit_schema("32K"))]

SeqLen = Annotated[int, BeforeValidator(parse_seq_len), Field(gt=0),
                   WithJsonSchema(_unit_schema("4K"))]
"""A sequence length: an integer or a binary unit (4K = 4096, 128K = 131072)."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

# Stored as float so YAML's `1e6` (a string to YAML 1.1) and `1000000` both work.
Float = Annotated[float, PlainSerializer(float)]

Mode = Literal["think", "no_think"]
