"""The recipe JSON Schema (for editors: `# yaml-language-server: $schema=...`)."""

from __future__ import annotations

import json

from qwen3_recipe.recipe.schema import Recipe


def schema_text() -> str:
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/qwen3-recipe/qwen3-recipe/recipes/recipe.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
