"""The root of a recipe."""

from __future__ import annotations

from pydantic import Field

from qwen3_recipe.recipe.schema.common import Section
from qwen3_recipe.recipe.schema.data import Data
from qwen3_recipe.recipe.schema.model import ModelSection, Tokenizer
from qwen3_recipe.recipe.schema.posttrain import Posttrain
from qwen3_recipe.recipe.schema.pretrain import Pretrain
from qwen3_recipe.recipe.schema.run import Evals, Execution, Outputs
from qwen3_recipe.recipe.schema.synth import Synth


class Catalog(Section):
    """Where the dataset and benchmark manifests live (default: nearest datasets_spec/ and evals/
    folders above the recipe, else the ones shipped with the package)."""

    datasets: str | None = None
    evals: str | None = None


class Recipe(Section):
    """A Qwen3-style training run, from raw data to evaluated models."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str | None = None
    extends: str | list[str] | None = None
    """Base recipe(s), relative to this file; merged before this one (see README)."""
    seed: int = 1234
    catalog: Catalog = Field(default_factory=Catalog)
    model: ModelSection
    tokenizer: Tokenizer
    data: Data = Field(default_factory=Data)
    synth: Synth = Field(default_factory=Synth)
    pretrain: Pretrain = Field(default_factory=Pretrain)
    posttrain: Posttrain = Field(default_factory=Posttrain)
    evals: Evals = Field(default_factory=Evals)
    execution: Execution = Field(default_factory=Execution)
    outputs: Outputs = Field(default_factory=Outputs)
