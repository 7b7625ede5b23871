"""`model` and `tokenizer` sections."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from qwen3_recipe.recipe.schema.common import Float, Section, SeqLen


class Architecture(Section):
    """Explicit architecture; on top of `preset` each field given replaces the preset's."""

    vocab_size: int | None = Field(None, gt=0)
    hidden_size: int | None = Field(None, gt=0)
    num_layers: int | None = Field(None, gt=0)
    num_heads: int | None = Field(None, gt=0)
    num_kv_heads: int | None = Field(None, gt=0)
    head_dim: int | None = Field(None, gt=0)
    intermediate_size: int | None = Field(None, gt=0)
    tie_embeddings: bool | None = None
    rope_theta: Float | None = Field(None, gt=0)
    max_position_embeddings: SeqLen | None = None
    rms_norm_eps: Float | None = Field(None, gt=0)
    num_experts: int | None = Field(None, ge=0)
    """Routed experts per MoE layer (0: dense)."""
    num_experts_per_tok: int | None = Field(None, ge=0)
    moe_intermediate_size: int | None = Field(None, ge=0)
    norm_topk_prob: bool | None = None


class Yarn(Section):
    """YaRN RoPE scaling: context = factor x original_max_position_embeddings."""

    factor: Float = Field(4.0, gt=1.0)
    original_max_position_embeddings: SeqLen = 32768


class ModelRef(Section):
    """A model outside the recipe's own training chain (a teacher) or one of its stages.

    Give `preset` and/or `arch` for the architecture (sizes feed estimates and the
    teacher-larger-than-student check) plus `path` for the weights; or `stage` to use the final
    checkpoint of a stage of this recipe.
    """

    preset: str | None = None
    """A Qwen3 preset name, e.g. Qwen3-235B-A22B."""
    arch: Architecture | None = None
    """Explicit architecture fields (as in `model.arch`)."""
    path: str | None = None
    """Weights: a local HF model directory, or a hub id on machines with hub access."""
    stage: str | None = None
    """A pretrain or posttrain stage of this recipe."""


class ModelSection(Section):
    """The model being trained: a Qwen3 preset, explicit `arch`, or a preset varied by `arch`."""

    preset: str | None = None
    """One of Qwen3-0.6B, -1.7B, -4B, -8B, -14B, -32B, -30B-A3B, -235B-A22B."""
    arch: Architecture | None = None
    name: str | None = None
    """Name written into exported checkpoints (default: the recipe name)."""
    yarn: Yarn | None = None
    """Inference-time context extension written into exported config.json (Qwen3: factor 4 from 32K)."""


class PretrainedTokenizer(Section):
    """Use an existing tokenizer directory (tokenizer.json + tokenizer_config.json)."""

    type: Literal["pretrained"]
    path: str
    """Local directory, or a hub id on machines with hub access (e.g. Qwen/Qwen3-8B)."""


class TrainedTokenizer(Section):
    """Train a byte-level BPE with `tokenizers` on the recipe's data, with Qwen3's special tokens."""

    type: Literal["train"]
    vocab_size: int = Field(gt=256)
    sources: list[str] | None = None
    """Data sources to train on (default: all)."""
    max_documents: int | None = Field(None, gt=0)


Tokenizer = Annotated[Union[PretrainedTokenizer, TrainedTokenizer], Field(discriminator="type")]
