"""torchtitan's Qwen3 (the same model code, state-dict adapter and HF export as the pretraining and SFT
stages) loaded from an HF directory, with per-token log-probabilities: the independent scorer the tests hold
the rollout engines and exports against (vLLM's log-probabilities, MoE exports), and `Batch`, the packed
sequences the stages' held-out scorers read. The stages themselves train HF models on TRL (trl_*.py).

Sequences are packed into one row per batch (prompt + response, back to back) with per-document
positions, so attention never crosses sequences: torchtitan's own document masking (FlexAttention
on GPUs; on CPU the SDPA document attention of qwen3_recipe.train.cpu).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from qwen3_recipe.train.cpu import apply_cpu_workarounds, cpu_model_config

apply_cpu_workarounds()

from qwen3_recipe.train.model import arch_from_hf  # noqa: E402 (after the CPU workarounds; the one HF -> arch mapping, dense or MoE)


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
    """A torchtitan Qwen3 in fp32 on one device, loaded from (and exported to) an HF directory.

    Dense or MoE, whatever the directory's config.json says: the architecture comes from
    `train.model.arch_from_hf` and the model from `train.model.model_spec`, pretraining's builder."""

    def __init__(self, hf_dir: str | Path, device: str = "cpu", rope_theta: float | None = None) -> None:
        from qwen3_recipe.train.model import model_spec
        self.hf_dir = Path(hf_dir)
        self.hf_config = json.loads((self.hf_dir / "config.json").read_text())
        self.arch = arch_from_hf(self.hf_config)
        if rope_theta:
            self.arch["rope_theta"] = rope_theta
        self.spec = model_spec(self.arch)
        if device == "cpu":  # FlexAttention has no CPU backward, experts in fp32 (train/cpu.py)
            cpu_model_config(self.spec.model)
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
        self.load_report = {"missing": missing, "unexpected": list(unexpected), "loaded": len(sd)}
        if missing or unexpected:
            raise ValueError(f"{hf_dir}: weights do not fit the model (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]})")

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights under HF names (what vLLM's and transformers' loaders take)."""
        sd = {k: v.detach() for k, v in self.model.state_dict().items()}
        return self.adapter.to_hf(sd)

    def save_hf(self, out: Path, job: dict) -> None:
        """config.json, tokenizer files and model.safetensors, written to a temp dir then renamed."""
        from qwen3_recipe.train.export import save_hf_weights
        save_hf_weights(self.hf_state_dict(), out, job)

    def logits(self, batch: Batch) -> torch.Tensor:
        """[T, V] next-token logits over the packed row."""
        masks = self.model.get_attention_masks(batch.positions)
        return self.model(batch.tokens, positions=batch.positions, attention_masks=masks)[0].float()

    def response_logits(self, batch: Batch) -> list[torch.Tensor]:
        """Per sequence, [len(response), V]: the logits that predicted each response token."""
        logits = self.logits(batch)
        return [logits[s - 1:e - 1] for s, e in batch.spans]

    def token_logprobs(self, batch: Batch, temperature: float | Sequence[float] = 1.0) -> list[torch.Tensor]:
        """Per sequence, the log-probability of each response token under softmax(logits / T): T the
        temperature the sequence was sampled at (one for all, or one per sequence)."""
        logits = at_temperature(self.response_logits(batch), temperature)
        return [gather_logprobs(lg, batch.tokens[0, s:e]) for (s, e), lg in zip(batch.spans, logits)]


def at_temperature(logits: list[torch.Tensor], temperature: float | Sequence[float]) -> list[torch.Tensor]:
    """Each sequence's logits / T: the distribution a sample at temperature T was drawn from (what vLLM's
    sampler divides by before sampling). T = 1 leaves the logits as they are."""
    temps = [temperature] * len(logits) if isinstance(temperature, (int, float)) else list(temperature)
    if len(temps) != len(logits):
        raise ValueError(f"{len(temps)} temperatures for {len(logits)} sequences")
    return [lg if t == 1.0 else lg / t for lg, t in zip(logits, temps)]


def gather_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[T, V] logits, [T] token ids -> [T] log-probabilities of those tokens."""
    return torch.log_softmax(logits, -1).gather(-1, targets[:, None])[:, 0]


def entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)
