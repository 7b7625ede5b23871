"""General-RL rewards (Qwen3 report, section 4.4): rule-based checks, agreement with a reference
answer, and a reward model given by path; the recipe weights them. A component that has nothing to
say about a sample (no reference answer) is left out of that sample's weighted mean."""

from __future__ import annotations

from collections.abc import Callable

from qwen3_recipe.posttrain.rollouts import Rollout
from qwen3_recipe.verify import answers as A

MAX_NON_ASCII = 0.1


def rule_reward(r: Rollout, max_tokens: int) -> float:
    """Share of the checks passed: a closed think block (think mode) or an empty one (no-think),
    a final answer given, not cut by the length limit, one language (little non-ASCII text), and
    the prompt's own constraints when its item lists them (`must_include`)."""
    state = A.think_state(r.text)
    checks = [state == "closed" if r.mode == "think" else state in ("closed", "absent"),
              A.final_answer(r.text) is not None,
              len(r.response_ids) < max_tokens,
              sum(ord(c) > 127 for c in r.text) <= MAX_NON_ASCII * max(1, len(r.text))]
    for word in r.prompt.item.get("must_include") or []:
        checks.append(str(word) in A.after_think(r.text))
    return sum(checks) / len(checks)


def reference_reward(r: Rollout) -> float | None:
    if r.prompt.gold is None:
        return None
    from qwen3_recipe.verify.verifiers import build_verifier
    return build_verifier({"type": "math"}).verify(r.text, r.prompt.gold, r.prompt.item).score


class RewardModel:
    """An HF sequence-classification model (one logit) scoring prompt + response, squashed to 0..1."""

    def __init__(self, path: str) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).eval()

    def __call__(self, r: Rollout) -> float:
        ids = self.torch.tensor([r.prompt_ids + r.response_ids])
        with self.torch.no_grad():
            return float(self.torch.sigmoid(self.model(input_ids=ids).logits[0, 0]))


def combined_reward(specs: list[dict], max_tokens: int) -> Callable[[Rollout], tuple[float, str]]:
    parts: list[tuple[float, Callable[[Rollout], float | None]]] = []
    for spec in specs:
        if spec["type"] == "rule":
            parts.append((spec["weight"], lambda r: rule_reward(r, max_tokens)))
        elif spec["type"] == "reference":
            parts.append((spec["weight"], reference_reward))
        elif spec["type"] == "reward_model":
            parts.append((spec["weight"], RewardModel(spec["path"])))
        else:
            raise ValueError(f"unknown reward type {spec['type']!r}")

    def reward(r: Rollout) -> tuple[float, str]:
        scored = [(w, v) for w, fn in parts if (v := fn(r)) is not None]
        total = sum(w for w, _ in scored)
        value = sum(w * v for w, v in scored) / total if total else 0.0
        return value, "correct" if reference_reward(r) == 1.0 else "scored"
    return reward
