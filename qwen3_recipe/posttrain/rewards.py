"""General-RL rewards (Qwen3 report, section 4.4): rule-based checks, agreement with a reference
answer by the prompt set's verifier, and a reward model given by path; the recipe weights them.
Each judges the committed answer (after `</think>`): what the policy only thought earns nothing. A
component that has nothing to say about a sample (no reference answer) is left out of that sample's
weighted mean."""

from __future__ import annotations

from qwen3_recipe.posttrain import language as L
from qwen3_recipe.posttrain.rollouts import Rollout
from qwen3_recipe.synth.prompts import Prompt
from qwen3_recipe.verify import answers as A

# reasoning sets (OpenThoughts-style, the tiny drills) answer in LaTeX or numbers: math-verify
DOMAIN_VERIFIERS = {"math": {"type": "math"}, "reasoning": {"type": "math"}, "code": {"type": "code"}}
OTHER_VERIFIER = {"type": "exact", "normalize": True}


def default_verifier(domain: str | None) -> dict:
    """The reference reward's verifier when the recipe names none, from the prompt dataset's
    `domain` (datasets_spec/): math and reasoning -> math-verify, code -> the item's tests in the
    sandbox, anything else -> exact match after normalisation."""
    return dict(DOMAIN_VERIFIERS.get(domain or "", OTHER_VERIFIER))


def resolve(specs: list[dict], domain: str | None) -> list[dict]:
    """The reward specs with every reference reward's verifier spelled out (the runner writes them
    to the job folder, so what judged a run is on record)."""
    return [dict(s, verifier=s.get("verifier") or default_verifier(domain)) if s["type"] == "reference" else dict(s)
            for s in specs]


class RuleReward:
    """Share of the checks passed: a closed think block (think mode) or an empty one (no-think), a
    final answer given, not cut by the length limit, the answer in the prompt's language, and the
    prompt's own constraints when its item lists them (`must_include`).

    The prompt's language is the one detected in its text, else the prompt set's when its spec
    lists one (`languages`); an answer, or a prompt, too short to tell passes rather than fails."""

    def __init__(self, max_tokens: int, languages: list[str] | None = None) -> None:
        self.max_tokens = max_tokens
        self.extra = L.known(languages)
        self.fallback = self.extra[0] if len(self.extra) == 1 else None
        self._prompt_language: dict[str, str | None] = {}

    def prompt_language(self, p: Prompt) -> str | None:
        if p.text not in self._prompt_language:
            self._prompt_language[p.text] = L.detect(p.text, self.extra) or self.fallback
        return self._prompt_language[p.text]

    def one_language(self, r: Rollout) -> bool:
        got = L.detect(A.after_think(r.text), self.extra)
        want = self.prompt_language(r.prompt) if got is not None else None
        return got is None or want is None or got == want

    def checks(self, r: Rollout) -> dict[str, bool]:
        state = A.think_state(r.text)
        out = {"think": state == "closed" if r.mode == "think" else state in ("closed", "absent"),
               "answer": A.final_answer(r.text) is not None,
               "length": len(r.response_ids) < self.max_tokens,
               "language": self.one_language(r)}
        for word in r.prompt.item.get("must_include") or []:
            out[f"include:{word}"] = str(word) in A.after_think(r.text)
        return out

    def __call__(self, r: Rollout) -> float:
        checks = self.checks(r)
        return sum(checks.values()) / len(checks)


class ReferenceReward:
    """The verifier's score against the prompt's reference: its gold answer, or for code its tests."""

    def __init__(self, verifier: dict) -> None:
        from qwen3_recipe.verify.verifiers import build_verifier
        self.verifier = build_verifier(verifier)

    def has_reference(self, p: Prompt) -> bool:
        return p.gold is not None or (self.verifier.type == "code" and p.item.get("tests") not in (None, "", []))

    def __call__(self, r: Rollout) -> float | None:
        if not self.has_reference(r.prompt):
            return None
        return self.verifier.verify(r.text, r.prompt.gold, r.prompt.item).score


class RewardModel:
    """An HF sequence-classification model (one logit) scoring (prompt, committed answer), squashed
    to 0..1. The text goes through the reward model's own tokenizer (the policy's ids mean nothing
    to it): its chat template when it has one, else prompt and answer joined by a blank line."""

    def __init__(self, path: str, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        self.torch, self.device = torch, device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).to(device).eval()
        limits = [n for n in (self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings",
                                                                      None)) if n and n < 10**9]
        self.max_length = min(limits) if limits else None

    def encode(self, prompt: str, answer: str) -> list[int]:
        tok = self.tokenizer
        if tok.chat_template:
            text = tok.apply_chat_template([{"role": "user", "content": prompt},
                                            {"role": "assistant", "content": answer}], tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tok(f"{prompt}\n\n{answer}")["input_ids"]
        # cut from the front: the answer, and the last token the head reads, are what is scored
        return ids[-self.max_length:] if self.max_length else ids

    def score(self, prompt: str, answer: str) -> float:
        ids = self.torch.tensor([self.encode(prompt, answer)], device=self.device)
        with self.torch.no_grad():
            return float(self.torch.sigmoid(self.model(input_ids=ids).logits[0, 0].float()))

    def __call__(self, r: Rollout) -> float:
        answer = A.after_think(r.text)
        # nothing committed (thinking cut off, or an empty reply) gets the floor, not a free score
        return self.score(r.prompt.text, answer) if answer else 0.0


class CombinedReward:
    """(weighted mean of the components, verdict): "correct" when a reference reward scores 1."""

    def __init__(self, specs: list[dict], max_tokens: int, *, domain: str | None = None,
                 languages: list[str] | None = None, device: str = "cpu") -> None:
        self.specs = resolve(specs, domain)
        self.parts = []
        for spec in self.specs:
            if spec["type"] == "rule":
                fn = RuleReward(max_tokens, languages)
            elif spec["type"] == "reference":
                fn = ReferenceReward(spec["verifier"])
            elif spec["type"] == "reward_model":
                fn = RewardModel(spec["path"], device)
            else:
                raise ValueError(f"unknown reward type {spec['type']!r}")
            self.parts.append((spec["weight"], fn))

    def __call__(self, r: Rollout) -> tuple[float, str]:
        values = [(w, fn, fn(r)) for w, fn in self.parts]
        scored = [(w, v) for w, _, v in values if v is not None]
        total = sum(w for w, _ in scored)
        correct = any(isinstance(fn, ReferenceReward) and v == 1.0 for _, fn, v in values)
        return (sum(w * v for w, v in scored) / total if total else 0.0), "correct" if correct else "scored"


def combined_reward(specs: list[dict], max_tokens: int, **kw) -> CombinedReward:
    """The stage's reward function; keywords: the prompt set's `domain` and `languages`, the reward
    model's `device`."""
    return CombinedReward(specs, max_tokens, **kw)
