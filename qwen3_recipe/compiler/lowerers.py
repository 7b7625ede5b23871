"""Lowerers turn a job into its engine's artifact inside the job folder (a datatrove pipeline,
a torchtitan config, a vLLM job). They register by job kind; the engine packages fill this in.
Third-party lowerers register through the `qwen3_recipe.lowerers` entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwen3_recipe.compiler.plan import Plan, PlannedJob

Lowerer = Callable[["PlannedJob", "Plan", Path], None]
LOWERERS: dict[str, Lowerer] = {}


def register(kind: str) -> Callable[[Lowerer], Lowerer]:
    def wrap(fn: Lowerer) -> Lowerer:
        LOWERERS[kind] = fn
        return fn
    return wrap


def lowerer_for(kind: str) -> Lowerer | None:
    if kind not in LOWERERS:
        from importlib.metadata import entry_points
        for ep in entry_points(group="qwen3_recipe.lowerers"):
            if ep.name == kind:
                LOWERERS[kind] = ep.load()
    return LOWERERS.get(kind)
