"""HF export beside torchtitan's: its `last_save_in_hf` writes safetensors only, so each exported
step also gets a config.json (from the same preset code as `qwen3-recipe model`) and the tokenizer
files, and transformers / vLLM load the folder directly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HF_INDEX = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "special_tokens_map.json", "generation_config.json")


def hf_config(arch: dict, eos_token_id: int | None = None, bos_token_id: int | None = None,
              rope_scaling: dict | None = None, name: str | None = None) -> dict:
    """config.json for the exported weights (saved in fp32 by torchtitan's HF writer)."""
    from qwen3_recipe.presets import Arch
    fields = {k: v for k, v in arch.items() if k in Arch.__dataclass_fields__}
    cfg = Arch(**fields).to_hf_config(name=name, rope_scaling=rope_scaling)
    cfg.update(torch_dtype="float32", bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    return cfg


def special_ids(tok_dir: Path) -> tuple[int | None, int | None]:
    """(eos, bos) token ids named by the tokenizer's config."""
    tok_cfg = tok_dir / "tokenizer_config.json"
    if not (tok_cfg.exists() and (tok_dir / "tokenizer.json").exists()):
        return None, None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    cfg = json.loads(tok_cfg.read_text())

    def tid(v):
        v = v.get("content") if isinstance(v, dict) else v
        return tok.token_to_id(v) if v else None

    return tid(cfg.get("eos_token")), tid(cfg.get("bos_token"))


def write_hf_assets(job: dict, step_dir: Path) -> None:
    tok_dir = Path(job["tokenizer_dir"])
    eos, bos = special_ids(tok_dir)
    cfg = hf_config(job["arch"], eos, bos, job.get("rope_scaling"), job.get("model_name"))
    (step_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    for name in TOKENIZER_FILES:
        if (tok_dir / name).exists():
            shutil.copy2(tok_dir / name, step_dir / name)


def save_hf_weights(weights: dict, out: Path, job: dict) -> None:
    """An HF folder from weights under HF names: model.safetensors with its index, config.json and the
    tokenizer files (write_hf_assets), written beside `out` and renamed into place, so a folder that exists
    is whole. A tied output head is left out (safetensors refuses shared tensors; loaders re-tie it)."""
    from safetensors.torch import save_file
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    if job["arch"].get("tie_embeddings") and "model.embed_tokens.weight" in weights:
        weights.pop("lm_head.weight", None)
    save_file(weights, tmp / "model.safetensors", metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in weights.values())},
             "weight_map": {k: "model.safetensors" for k in weights}}
    (tmp / HF_INDEX).write_text(json.dumps(index, indent=2))
    write_hf_assets(job, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
