"""A synth job's dataset as a pretraining source: each kept sample (a conversation, synth/job.py
dataset_row) becomes one document, rendered as plain text or through Qwen3's chat template, and
then goes through the read accounting, filters, decontamination and dedup like any source."""

from __future__ import annotations

from functools import cache
from typing import Any

from qwen3_recipe.data.readers import LocatedParquetReader

# the sample's fields kept in the document's metadata (the rest of a row is the conversation)
KEPT_FIELDS = ("mode", "prompt_id", "teacher", "verified", "thinking_budget", "budget_cut")


def render_text(messages: list[dict[str, Any]]) -> str:
    """Every turn as plain text, a turn's reasoning before its answer, blank lines between: the
    shape of CoT pretraining data (no template tokens)."""
    parts = []
    for m in messages:
        parts += [p.strip() for p in (m.get("reasoning_content") or "", m.get("content") or "") if p and p.strip()]
    return "\n\n".join(parts)


@cache
def _template():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from qwen3_recipe.tokenizer.qwen3 import chat_template
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders it
    return env.from_string(chat_template())


def render_chat(messages: list[dict[str, Any]]) -> str:
    """The conversation through Qwen3's chat template, the final answer's think block included."""
    return _template().render(messages=messages, add_generation_prompt=False)


RENDERERS = {"text": render_text, "chat": render_chat}


class SynthDatasetReader(LocatedParquetReader):
    """datatrove's ParquetReader over a synth job's dataset folder, a row rendered to a document."""

    name = "📒 synth samples"

    def __init__(self, data_folder, render: str = "text", synth_job: str = "", **kwargs) -> None:
        super().__init__(data_folder, **kwargs)
        self.render, self.synth_job = render, synth_job

    def _default_adapter(self, data: dict, path: str, id_in_file: int | str) -> dict:
        messages = list(data.get("messages") or [])
        meta = {k: data[k] for k in KEPT_FIELDS if k in data} | {"synth_job": self.synth_job, "format": self.render}
        return {"text": RENDERERS[self.render](messages) if messages else "",
                "id": data.get(self.id_key) or f"{path}/{id_in_file}", "media": [], "metadata": meta}
