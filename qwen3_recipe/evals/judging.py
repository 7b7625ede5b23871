"""The judge model of an eval job (`evals.judge`) and its baseline: every judging game generated in one
batch through the job's request cache (greedy, no thinking; resumable like the answers), then served
to the `judge` verifier by lookup. The judge's model id is recorded in every verdict."""

from __future__ import annotations

from qwen3_recipe.synth.cache import RequestCache, request_key


class Served:
    """A model an eval job asks besides the one evaluated (the judge, the baseline): greedy and
    without thinking, through the job's request cache."""

    def __init__(self, plan, cfg: dict, cache: RequestCache, purpose: str):
        from qwen3_recipe.synth.job import teacher_dir, teacher_id
        self.cfg, self.cache, self.purpose = cfg, cache, purpose
        self.too_long: dict[str, str] = {}
        self.model = teacher_dir(plan, cfg)
        self.model_id = teacher_id(plan, cfg) if not cfg.get("server_url") else f"{cfg['server_url']}:{cfg['path']}"
        self.engine_cfg = {"engine": "vllm_server" if cfg.get("server_url") else "vllm",
                           "server_url": cfg.get("server_url"), "max_tokens": cfg["max_tokens"]}

    def request(self, messages: list[dict]) -> dict:
        req = {"purpose": self.purpose, "messages": messages, "mode": "no_think", "n": 1,
               "max_tokens": self.cfg["max_tokens"], "thinking_budget": None,
               "sampling": {"temperature": 0.0}, "seed": 0, "model": self.model_id}
        req["key"] = request_key(req)
        return req

    def _fits(self, requests: list[dict]) -> list[dict]:
        """The requests whose prompt and answer fit a local model's context; the others are
        remembered as unanswerable (a judge that cannot read the game gives no verdict)."""
        import json
        from pathlib import Path
        cfg = Path(str(self.model)) / "config.json"
        if self.cfg.get("server_url") or not cfg.exists():
            return requests
        from transformers import AutoTokenizer
        limit = json.loads(cfg.read_text()).get("max_position_embeddings") or 1 << 30
        tok = AutoTokenizer.from_pretrained(str(self.model))
        fits = []
        for r in requests:
            text = tok.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True)
            n = len(tok.encode(text, add_special_tokens=False))
            if n + r["max_tokens"] <= limit:
                fits.append(r)
            else:
                self.too_long[r["key"]] = f"{n} prompt tokens + {r['max_tokens']} exceed the context of {limit}"
        return fits

    def generate(self, requests: list[dict], label: str) -> None:
        from qwen3_recipe.progress import synth_progress
        from qwen3_recipe.synth.job import counting, generate_missing
        todo = self._fits(list({r["key"]: r for r in requests}.values()))
        with synth_progress(label, len(todo), done=sum(r["key"] in self.cache for r in todo)) as progress:
            generate_missing(todo, self.cache, self.engine_cfg, self.model, counting(progress, self.cache))

    def answer(self, messages: list[dict]) -> str:
        key = self.request(messages)["key"]
        if key in self.too_long:
            return f"(no judgment: {self.too_long[key]})"
        samples = self.cache.get(key)
        if not samples:
            raise RuntimeError(f"{self.purpose}: an answer was not generated")
        return samples[0]["text"]


def fill_baselines(plan, cfg: dict | None, cache: RequestCache, items: list[dict]) -> None:
    """Items without a baseline answer from their rows get the declared baseline model's."""
    from qwen3_recipe.verify import answers as A
    todo = [it for it in items if "baseline" not in it]
    if not todo:
        return
    if not cfg or not cfg.get("baseline"):
        raise RuntimeError("judged items carry no baseline answer: declare `evals.judge.baseline`")
    base = Served(plan, cfg["baseline"], cache, "baseline")
    base.generate([base.request([{"role": "user", "content": it["rendered_prompt"]}]) for it in todo], "baseline")
    for it in todo:
        it["baseline"] = A.after_think(base.answer([{"role": "user", "content": it["rendered_prompt"]}]))


class Judge(Served):
    def __init__(self, plan, cfg: dict | None, cache: RequestCache):
        if not cfg:
            raise RuntimeError("a judged benchmark needs `evals.judge` (a stage, path or server_url)")
        super().__init__(plan, cfg, cache, "judge")

    def prepare(self, pairs: list[tuple[dict, str]]) -> None:
        """Generate the judgments of (item, response) pairs that the cache lacks."""
        from qwen3_recipe.verify import answers as A
        from qwen3_recipe.verify.judge import games
        self.generate([self.request(messages) for item, text in pairs if A.think_state(text) != "unclosed"
                       for messages in games(item["question"], A.after_think(text), item["baseline"])], "judge")

    def __call__(self, messages_list: list[list[dict]]) -> list[str]:
        return [self.answer(messages) for messages in messages_list]
