"""`synth.<job>` jobs: prompts -> N samples per prompt from a teacher (vLLM, a vLLM server or
transformers; think / no-think / both, optional thinking budget) -> filters -> verification ->
up to k kept per prompt -> a chat dataset (Parquet, `messages` with `reasoning_content`) that
SFT stages read, with every prompt and sample's fate in the run's provenance (tables `prompts`,
`samples`). Generation goes through a content-addressed request cache: a killed job resumes
and produces the same dataset as an uninterrupted run, each sample exactly once."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.synth.cache import RequestCache, request_key
from qwen3_recipe.synth.fusion import mode_switch_conversations
from qwen3_recipe.synth.prompts import Prompt, decontaminate, load_prompts
from qwen3_recipe.synth.select import Candidate, choose, filter_reason, split_think

BATCH_PROMPTS = 32


def stage_job(plan: Plan, stage: str) -> str:
    """The job that trains a pretrain or posttrain stage of this recipe."""
    return f"pretrain.{stage}" if f"pretrain.{stage}" in plan.fingerprints else f"posttrain.{stage}"


def teacher_dir(plan: Plan, teacher: dict) -> Path | str:
    """A stage of this recipe (its exported weights) or a model path / hub id."""
    if teacher.get("stage"):
        return (plan.run_dir / "jobs" / stage_job(plan, teacher["stage"]) / "hf").resolve()
    return teacher["path"]


def teacher_id(plan: Plan, teacher: dict) -> str:
    """What request-cache keys name as the model: a stage with its job's fingerprint, a local folder
    with its files' sizes and times, else the hub id. Retrained or replaced weights are a new model,
    so their generations are never served from an older model's cache."""
    if teacher.get("stage"):
        return f"stage:{teacher['stage']}@{plan.fingerprints[stage_job(plan, teacher['stage'])]}"
    path = Path(teacher["path"])
    if not path.is_dir():
        return str(teacher["path"])
    files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.iterdir() if f.is_file())
    return f"{path.resolve()}@{hashlib.sha256(repr(files).encode()).hexdigest()[:16]}"


def requests_for(prompts: list[Prompt], modes: dict, seed: int, teacher_id: str,
                 logprobs: int | None = None) -> list[dict]:
    """One request per prompt and mode of the generation plan (synth/plan.py); `logprobs`: the top-k
    log-probabilities of every generated token come back too (a distillation teacher's pass)."""
    out = []
    for p in prompts:
        for mode, m in modes.items():
            req = {"prompt_id": p.prompt_id, "messages": [{"role": "user", "content": p.text + m["suffix"]}],
                   "mode": mode, "n": m["n"], "max_tokens": m["max_tokens"], "thinking_budget": m["thinking_budget"],
                   "sampling": m["sampling"], "seed": (seed, p.prompt_id, mode), "teacher": teacher_id}
            if logprobs:
                req["logprobs"] = logprobs
            req["key"] = request_key(req)
            out.append(req)
    return out


def generated_tokens(batch: list[dict], cache: RequestCache) -> int:
    """Tokens the engine generated for a batch of cached requests (the progress bar's tokens/s)."""
    return sum(len(s.get("token_ids") or []) for r in batch for s in cache.get(r["key"]))


def counting(progress, cache: RequestCache):
    """An `on_batch` for generate_missing that advances a synth_progress bar by samples and tokens."""
    return lambda batch: progress(sum(r.get("n", 1) for r in batch), tokens=generated_tokens(batch, cache))


def generate_missing(requests: list[dict], cache: RequestCache, cfg: dict, model: Path | str, on_batch,
                     folder: Path | None = None) -> None:
    """Generate the requests not in the cache, in batches; `on_batch(batch)` after each is cached.
    cfg["serving"] (qwen3_recipe/serving.py) says where: in this process, or on servers per task
    (synth/served.py, working in `folder`)."""
    todo = [r for r in requests if r["key"] not in cache]
    from qwen3_recipe.serving import in_process
    serving = cfg.get("serving") or in_process()  # a judge or a baseline: in process
    if not todo:
        import os

        from qwen3_recipe.synth.phases import PHASE_ENV
        if os.environ.get(PHASE_ENV) == "serve":  # a Slurm array task: the job's last part assembles it
            from qwen3_recipe.errors import PhaseDone
            raise PhaseDone("nothing left to generate")
        return
    from qwen3_recipe.serving import in_process_kwargs
    from qwen3_recipe.synth.generate import build_engine, max_model_len, run_requests
    from qwen3_recipe.synth.model_view import model_for
    # decided over all the job's requests, not the uncached ones, so a resumed job uses the same RoPE;
    # UTF-8 bytes bound tokens from above (a byte-level BPE token is at least one byte); 64 for the template
    longest = cfg["max_tokens"] + max(sum(len(m["content"].encode()) for m in r["messages"]) + 64 for r in requests)
    if cfg["engine"] != "vllm_server":  # a server runs the config it was started with
        model = model_for(model, longest)
    if serving["type"] != "in_process":
        from qwen3_recipe.synth.served import generate_served
        window = serving.get("max_model_len") or max_model_len(str(model), longest)
        generate_served(todo, cache, serving, str(model), window, folder, on_batch, cfg.get("executor"))
        return
    # the engine's window must hold the longest prompt too, not only the answer (a judge's prompt is long)
    engine = build_engine(cfg["engine"], str(model), server_url=cfg.get("server_url"), max_tokens=longest,
                          **(in_process_kwargs(serving) if cfg["engine"] == "vllm" else {}))
    try:
        for i in range(0, len(todo), BATCH_PROMPTS):
            batch = todo[i:i + BATCH_PROMPTS]
            results = run_requests(engine, batch)
            cache.put_batch({r["key"]: res for r, res in zip(batch, results)})
            on_batch(batch)
    finally:
        engine.close()  # vLLM's engine core (a process of its own where vLLM runs one)


def run_synth(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.compiler.lowerers import load_lowered
    from qwen3_recipe.console import console
    from qwen3_recipe.progress import synth_progress
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.verify.isolation import set_policy
    gen = load_lowered(p, plan)  # the generation plan compile wrote (synth/plan.py)
    set_policy(gen["judge"]["sandbox"])
    seed, engine = gen["seed"], gen["engine"]
    folder = plan.run_dir / p.job.dir
    model = engine["model"]
    rec = ShardRecorder(folder / "provenance", p.job.name, "synth", 0)
    prompts = load_prompts(plan, gen["prompts"]["dataset"], gen["prompts"]["limit"])
    benchmarks = sorted(k.split(":", 1)[1] for k in p.job.inputs if k.startswith("benchmark:"))
    if gen["judge"]["decontaminate"]:
        prompts = decontaminate(plan, prompts, benchmarks, rec, gen["judge"]["decontamination"])
    else:
        for pr in prompts:
            rec.add("prompts", source=pr.source, prompt_id=pr.prompt_id, prompt=pr.text, gold=pr.gold, decision="kept")
    by_id = {pr.prompt_id: pr for pr in prompts}
    requests = requests_for(prompts, gen["modes"], seed, engine["model_id"])
    cache = RequestCache(folder / "cache")
    judge = Judge(plan, gen["judge"], benchmarks)
    total = sum(r["n"] for r in requests)

    def judged(batch: list[dict]) -> tuple[int, int]:
        """(samples, kept) of requests whose samples are cached, judged now (decisions kept for assemble)."""
        return (sum(r["n"] for r in batch),
                sum(judge.judge(r, by_id[r["prompt_id"]], cache.get(r["key"])) for r in batch))

    done, kept = judged([r for r in requests if r["key"] in cache])  # a resumed job's earlier samples
    with synth_progress(p.job.name, total, done=done, kept=kept) as progress:
        engine_cfg = {"engine": engine["kind"], "server_url": engine["server_url"], "serving": engine["serving"],
                      "executor": engine["executor"],
                      "max_tokens": max(m["max_tokens"] for m in gen["modes"].values())}
        generate_missing(requests, cache, engine_cfg, model,
                         lambda batch: progress(*judged(batch), tokens=generated_tokens(batch, cache)), folder)
    rows = assemble(requests, by_id, cache, judge, rec, str(model))
    kept_modes = {m: sum(r["mode"] == m for r in rows) for m in ("think", "no_think")}
    kept = len(rows)
    switches = mode_switch_conversations(rows, gen["multi_turn_share"], seed)
    write_dataset(folder / "dataset", rows + switches)
    rec.close()
    build_database(plan.run_dir)
    extra = f" + {len(switches):,} two-turn mode-switch conversations" if switches else ""
    console().print(f"{p.job.name}: kept {kept:,} of {total:,} samples ({kept_modes['think']:,} think, "
                    f"{kept_modes['no_think']:,} no-think) from {len(prompts):,} prompts{extra} -> "
                    f"{folder / 'dataset'}")


class Judge:
    """Filters, verification and the choice of up to k per request, for one job. Requests are judged
    as their samples arrive (the progress bar's acceptance); only the decisions are kept, never the
    texts, and `candidates` replays them for assemble instead of verifying twice."""

    def __init__(self, plan: Plan, cfg: dict, benchmarks: list[str]) -> None:
        """cfg: the generation plan's `judge` (synth/plan.py)."""
        from qwen3_recipe.verify import build_verifier
        self.cfg = cfg
        self.filters = _Filters(cfg["filters"])
        self.verifier = build_verifier(cfg["verifier"]) if cfg.get("verifier") else None
        self.index = None
        if cfg["decontaminate"]:
            from qwen3_recipe.data.decont_index import contamination_index
            self.index = contamination_index(plan, benchmarks, cfg["decontamination"])  # compiled settings
        self.decisions: dict[str, list[tuple]] = {}

    def judge(self, req: dict, prompt: Prompt, samples: list[dict]) -> int:
        """Judge a request's samples, remember the decisions; the number kept."""
        cands = self.candidates(req, prompt, samples)
        self.decisions[req["key"]] = [(c.answer, c.verified, c.reason, c.decision, c.majority_vote,
                                       c.extra.get("verdict")) for c in cands]
        return sum(c.decision == "kept" for c in cands)

    def candidates(self, req: dict, prompt: Prompt, samples: list[dict]) -> list[Candidate]:
        cfg, known = self.cfg, self.decisions.get(req["key"])
        cands = []
        for i, s in enumerate(samples):
            c = Candidate(f"{req['prompt_id']}/{req['mode']}/{i}", s["text"], None, False, extra=s)
            if known is not None:
                c.answer, c.verified, c.reason, c.decision, c.majority_vote, verdict = known[i]
                if verdict is not None:
                    c.extra = {**s, "verdict": verdict}
                cands.append(c)
                continue
            c.reason = filter_reason(s["text"], req["mode"], s.get("finish_reason"), self.filters)
            if c.reason is None and self.index is not None and self.index.find(s["text"]):
                c.reason = "contaminated"
            if c.reason is None:
                if self.verifier is not None:
                    v = self.verifier.verify(s["text"], prompt.gold, prompt.item)
                    c.answer, c.verified, c.extra = v.extracted, v.ok, {**s, "verdict": v.reason}
                    if not v.ok and prompt.gold is not None:
                        c.reason = v.reason
                else:
                    c.verified = True
            cands.append(c)
        if known is None:
            choose(cands, cfg["keep_per_prompt"], cfg["filters"]["dedup"], prompt.gold is not None,
                   cfg["majority_vote"])
        return cands


def assemble(requests: list[dict], prompts: dict[str, Prompt], cache: RequestCache, judge: Judge, rec,
             teacher: str) -> list[dict]:
    """Record every sample with its decision (judged already, or now); the kept ones as dataset rows."""
    rows = []
    for req in requests:
        prompt = prompts[req["prompt_id"]]
        for c in judge.candidates(req, prompt, cache.get(req["key"])):
            s = c.extra
            rec.add("samples", source=prompt.source, prompt_id=prompt.prompt_id, sample_id=c.sample_id,
                    teacher=teacher, mode=req["mode"], thinking_budget=req["thinking_budget"],
                    budget_cut=bool(s.get("budget_cut")), cut_at=s.get("cut_at"),
                    thinking_tokens=s.get("thinking_tokens"), tokens=len(s.get("token_ids") or []),
                    finish_reason=s.get("finish_reason"), answer=c.answer, verified=c.verified,
                    verdict=s.get("verdict"), majority_vote=c.majority_vote, decision=c.decision,
                    reason=c.reason, text=c.text)
            if c.decision == "kept":
                rows.append(dataset_row(req, prompt, c, teacher))
    return rows


class _Filters:
    def __init__(self, d: dict) -> None:
        self.__dict__.update(d)


def dataset_row(req: dict, prompt: Prompt, c: Candidate, teacher: str) -> dict:
    thinking, answer, _ = split_think(c.text)
    s = c.extra
    return {"id": c.sample_id, "source": prompt.source, "prompt_id": prompt.prompt_id,
            "messages": [{"role": "user", "content": req["messages"][0]["content"], "reasoning_content": ""},
                         {"role": "assistant", "content": answer, "reasoning_content": thinking or ""}],
            "mode": req["mode"], "teacher": teacher, "sampling": json.dumps(req["sampling"]),
            "thinking_budget": req["thinking_budget"], "budget_cut": bool(s.get("budget_cut")),
            "verified": c.verified, "majority_vote": c.majority_vote, "answer": c.answer, "gold": prompt.gold,
            "built_from": None}  # a generated sample; the sample ids a mode-switch row joins (synth/fusion.py)


def write_dataset(folder: Path, rows: list[dict]) -> None:
    """One Parquet file (HF datasets loads it: `load_dataset("parquet", data_files=...)`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "train.parquet"
    tmp = target.with_suffix(f".tmp{int(time.time())}")
    pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({"id": pa.array([], pa.string())}), tmp)
    tmp.replace(target)
