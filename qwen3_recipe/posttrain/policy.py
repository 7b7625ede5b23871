"""The model a post-training stage optimises: torchtitan's Qwen3 (the same model code, state-dict
adapter and HF export as the pretraining and SFT stages), loaded from an HF directory, with the
per-token log-probabilities every RL and distillation objective is built from.

Sequences are packed into one row per batch (prompt + response, back to back) with per-document
positions, so attention never crosses sequences: torchtitan's own document masking (FlexAttention
on GPUs; on CPU the SDPA document attention of qwen3_recipe.train.cpu).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from qwen3_recipe.train.cpu import SDPADocumentAttention, apply_cpu_workarounds

apply_cpu_workarounds()


def arch_from_hf(config: dict) -> dict:
    """Our arch dict (presets.Arch fields) from an HF config.json."""
    rope = config.get("rope_parameters") or {}
    return {"vocab_size": config["vocab_size"], "hidden_size": config["hidden_size"],
            "num_layers": config["num_hidden_layers"], "num_heads": config["num_attention_heads"],
            "num_kv_heads": config["num_key_value_heads"],
            "head_dim": config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
            "intermediate_size": config["intermediate_size"],
            "tie_embeddings": bool(config.get("tie_word_embeddings", False)),
            "rope_theta": float(config.get("rope_theta") or rope.get("rope_theta", 1e6)),
            "rms_norm_eps": float(config.get("rms_norm_eps", 1e-6)),
            "max_position_embeddings": int(config["max_position_embeddings"])}


@dataclass
class Batch:
    """Packed sequences: tokens [1, T], positions [1, T], and where each response sits."""
    tokens: torch.Tensor
    positions: torch.Tensor
    spans: list[tuple[int, int]]  # (start, end) of each response's tokens in the row

    @classmethod
    def pack(cls, seqs: list[tuple[list[int], list[int]]], device: str | torch.device = "cpu") -> "Batch":
        tokens, positions, spans = [], [], []
        for prompt, response in seqs:
            start = len(tokens) + len(prompt)
            tokens += prompt + response
            positions += range(len(prompt) + len(response))
            spans.append((start, start + len(response)))
        as_row = lambda xs: torch.tensor([xs], dtype=torch.long, device=device)  # noqa: E731
        return cls(as_row(tokens), as_row(positions), spans)


class Policy:
    """A torchtitan Qwen3 in fp32 on one device, loaded from (and exported to) an HF directory."""

    def __init__(self, hf_dir: str | Path, device: str = "cpu", rope_theta: float | None = None) -> None:
        from qwen3_recipe.train.model import model_spec
        self.hf_dir = Path(hf_dir)
        self.hf_config = json.loads((self.hf_dir / "config.json").read_text())
        self.arch = arch_from_hf(self.hf_config)
        if rope_theta:
            self.arch["rope_theta"] = rope_theta
        self.spec = model_spec(self.arch)
        if device == "cpu":  # FlexAttention has no CPU backward (train/cpu.py)
            for layer in self.spec.model.layers:
                layer.attention.inner_attention = SDPADocumentAttention.Config()
        self.device = torch.device(device)
        with torch.device("meta"):
            self.model = self.spec.model.build()
        self.model.to_empty(device=self.device)
        self.model.init_states(buffer_device=self.device)  # RoPE caches and weight tying; weights next
        self.adapter = self.spec.state_dict_adapter(self.spec.model, None)
        self.load_hf(self.hf_dir)

    def load_hf(self, hf_dir: Path) -> None:
        from safetensors.torch import load_file
        hf = {}
        for f in sorted(Path(hf_dir).glob("*.safetensors")):
            hf.update(load_file(f))
        sd = self.adapter.from_hf({k: v.float() for k, v in hf.items()})
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        missing = [m for m in missing if not m.endswith("lm_head.weight") or not self.arch["tie_embeddings"]]
        if missing or unexpected:
            raise ValueError(f"{hf_dir}: weights do not fit the model (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights under HF names (what vLLM's and transformers' loaders take)."""
        sd = {k: v.detach() for k, v in self.model.state_dict().items()}
        return self.adapter.to_hf(sd)

    def save_hf(self, out: Path, job: dict) -> None:
        """config.json, tokenizer files and model.safetensors, written to a temp dir then renamed."""
        import shutil

        from safetensors.torch import save_file

        from qwen3_recipe.train.export import write_hf_assets
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        weights = {k: v.contiguous().cpu() for k, v in self.hf_state_dict().items()}
        save_file(weights, tmp / "model.safetensors", metadata={"format": "pt"})
        index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in weights.values())},
                 "weight_map": {k: "model.safetensors" for k in weights}}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        write_hf_assets(job, tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)

    def logits(self, batch: Batch) -> torch.Tensor:
        """[T, V] next-token logits over the packed row."""
        masks = self.model.get_attention_masks(batch.positions)
        return self.model(batch.tokens, positions=batch.positions, attention_masks=masks)[0].float()

    def response_logits(self, batch: Batch) -> list[torch.Tensor]:
        """Per sequence, [len(response), V]: the logits that predicted each response token."""
        logits = self.logits(batch)
        return [logits[s - 1:e - 1] for s, e in batch.spans]

    def token_logprobs(self, batch: Batch) -> list[torch.Tensor]:
        """Per sequence, the log-probability of each response token."""
        out = []
        for (s, e), lg in zip(batch.spans, self.response_logits(batch)):
            target = batch.tokens[0, s:e]
            out.append(torch.log_softmax(lg, -1).gather(-1, target[:, None])[:, 0])
        return out


def entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)
