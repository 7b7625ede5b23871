"""The recipe schema (pydantic v2). `Recipe` is the root; sections live one per module."""

from qwen3_recipe.recipe.schema.recipe import Recipe

__all__ = ["Recipe"]
