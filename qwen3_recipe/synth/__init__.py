"""Synthetic reasoning data: generation engines (vLLM, a vLLM server, transformers) behind one interface,
Qwen3's thinking modes and thinking budget. Importing this package imports no engine."""

from qwen3_recipe.synth.sampling import (
                                         EARLY_STOP,
                                         MODE_DEFAULTS,
                                         Request,
                                         Result,
                                         Sample,
                                         SamplingParams,
                                         resolve_mode,
)

__all__ = ["EARLY_STOP", "MODE_DEFAULTS", "Request", "Result", "Sample", "SamplingParams", "resolve_mode"]
