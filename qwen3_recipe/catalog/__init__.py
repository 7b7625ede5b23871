"""The catalogs a recipe refers to by name: datasets_spec/ (sources) and evals/ (benchmarks)."""

from qwen3_recipe.catalog.load import Catalogs, load_catalogs

__all__ = ["Catalogs", "load_catalogs"]
