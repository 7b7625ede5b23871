"""Python side of benchmarks/gpu_check.sh: the compiled Qwen3-0.6B stage vs torchtitan's own
Qwen3-0.6B config on one GPU; same data, seq_len, global batch, steps. Phases: `prepare` (random-token
documents as packed tokens and as JSONL text "t17 t90321 ...", a word-level tokenizer mapping "t<i>"
to id i over the model's 151,936 ids, the compiled job: load_recipe + make_plan + stage_job with paths,
steps, batch patched), `configs` (both Trainer.Configs built as torchrun builds them, same first
document checked), `compiled` (launch), `stock` (torchrun over `stock_config`: torchtitan's
qwen3_0_6b() on its HF text loader), `summary` (tps / MFU from torchtitan's log lines), `selftest`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOCAB, EOS_ID, SPECIALS = 151_936, 151_643, {151_643: "<|endoftext|>", 151_644: "<|im_start|>", 151_645: "<|im_end|>"}
DATASET = "gpu_check_jsonl"
SPEC_ENV = "GPU_CHECK_SPEC"


def prepare(work: Path, steps: int, batch: int, loader: str, seed: int = 0) -> None:
    import numpy as np
    from tokenizers import Tokenizer, models, pre_tokenizers

    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    from qwen3_recipe.train.pretrain import stage_job

    plan = make_plan(load_recipe(ROOT / "recipes" / "qwen3-0.6B.yaml"), work / "run")
    p = next(p for p in plan.jobs if p.job.name.startswith("pretrain."))
    job = stage_job(p, plan)
    seq_len = job["seq_len"]  # the stage's: 4096

    tok_dir, tokens_dir = work / "tokenizer", work / "tokens"
    for d in (tok_dir, tokens_dir, work / "compiled", work / "stock"):
        d.mkdir(parents=True, exist_ok=True)
    vocab = {SPECIALS.get(i, f"t{i}"): i for i in range(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIALS[EOS_ID]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(list(SPECIALS.values()))
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": SPECIALS[EOS_ID], "bos_token": None, "add_bos_token": False, "add_eos_token": False,
        "model_max_length": 1 << 20, "tokenizer_class": "PreTrainedTokenizerFast"}))

    rng = np.random.default_rng(seed)
    need, docs, total = int((steps + 4) * batch * seq_len * 1.05), [], 0
    while total < need:  # web-like lengths: lognormal around 1,500 tokens
        n = int(np.clip(rng.lognormal(np.log(1500), 1.0), 32, 16384))
        docs.append(rng.integers(0, EOS_ID, n, dtype=np.uint32))
        total += n + 1
    stem = tokens_dir / "gpu_check_00000_unshuffled.ds"
    np.concatenate([np.append(d, np.uint32(EOS_ID)) for d in docs]).tofile(stem)
    np.cumsum([len(d) + 1 for d in docs]).astype(np.uint64).tofile(f"{stem}.index")
    Path(f"{stem}.metadata").write_text(f"{tok_dir / 'tokenizer.json'}|4\n")
    (work / "docs.jsonl").write_text("".join(
        json.dumps({"id": f"d{i}", "text": " ".join(f"t{t}" for t in d.tolist())}) + "\n" for i, d in enumerate(docs)))

    job.update(steps=steps, batch_tokens=batch * seq_len, tokenizer_dir=str(tok_dir),
               data={"kind": "tokens", "tokens_dir": str(tokens_dir), "token_size": 4},
               dump_folder=str(work / "compiled" / "dump"))
    job["lr"]["warmup_steps"] = min(job["lr"]["warmup_steps"], steps - 1)
    (work / "compiled" / "job.json").write_text(json.dumps(job, indent=1))
    spec = {"steps": steps, "batch": batch, "seq_len": seq_len, "tokenizer_dir": str(tok_dir),
            "jsonl": str(work / "docs.jsonl"), "tokens_dir": str(tokens_dir),
            "dump_folder": str(work / "stock" / "dump"), "loader": loader}
    (work / "stock" / "spec.json").write_text(json.dumps(spec, indent=1))
    print(f"prepare: {len(docs)} documents, {total:,} tokens (need {need:,}); stage {p.job.name}: "
          f"seq_len {seq_len}, batch {batch} x {seq_len} = {batch * seq_len:,} tokens/step, {steps} steps")


def stock_config():
    """torchtitan's own Qwen3-0.6B config function, pointed at this check's data ($GPU_CHECK_SPEC)."""
    from torchtitan.hf_datasets.text_datasets import DATASETS, HuggingFaceTextDataLoader
    from torchtitan.models.qwen3.config_registry import qwen3_0_6b

    spec = json.loads(Path(os.environ[SPEC_ENV]).read_text())
    cfg = qwen3_0_6b()
    cfg.hf_assets_path, cfg.dump_folder = spec["tokenizer_dir"], spec["dump_folder"]
    cfg.training.steps, cfg.training.seq_len = spec["steps"], spec["seq_len"]
    cfg.training.local_batch_size = cfg.training.global_batch_size = spec["batch"]
    if spec["loader"] == "packed":
        from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader
        cfg.dataloader = PackedTokensDataLoader.Config(dataset_path=spec["tokens_dir"], token_size=4)
    else:  # torchtitan's own loader, on a dataset registered here (no edits to torchtitan)
        from datasets import load_dataset
        from torchtitan.hf_datasets import DatasetConfig
        DATASETS[DATASET] = DatasetConfig(
            path=spec["jsonl"], loader=lambda path: load_dataset("json", data_files=path, split="train"),
            sample_processor=lambda sample: sample["text"])
        cfg.dataloader = HuggingFaceTextDataLoader.Config(dataset=DATASET)
    return cfg


def configs(work: Path) -> None:
    """Both Trainer.Configs as torchrun's `torchtitan.train` builds them (ConfigManager, --module/--config)."""
    from torchtitan.components.tokenizer import HuggingFaceTokenizer
    from torchtitan.config import ConfigManager

    from qwen3_recipe.train.launch import JOB_ENV
    os.environ.update({SPEC_ENV: str(work / "stock" / "spec.json"), JOB_ENV: str(work / "compiled" / "job.json")})
    sys.path.insert(0, str(ROOT / "benchmarks"))
    built = {name: ConfigManager().parse_args(["--module", module, "--config", fn]) for name, module, fn in (
        ("compiled", "qwen3_recipe.train.job", "config"), ("torchtitan", "gpu_check", "stock_config"))}
    tok = HuggingFaceTokenizer(tokenizer_path=built["compiled"].hf_assets_path)
    with open(work / "docs.jsonl") as f:
        first = tok.encode(json.loads(f.readline())["text"], add_bos=False, add_eos=False)
    same = []
    for name, cfg in built.items():
        t, m, name_of = cfg.training, cfg.model_spec.model, lambda o: type(o).__qualname__.removesuffix(".Config")
        loader = cfg.dataloader.build(dp_world_size=1, dp_rank=0, tokenizer=tok, seq_len=t.seq_len,
                                      local_batch_size=t.local_batch_size)
        same.append(next(iter(loader))[0]["input"][0, :len(first)].tolist() == first[:t.seq_len])
        print(f"{name:10s} flavor {cfg.model_spec.flavor} ({len(m.layers)} layers, dim {m.dim}, vocab {m.vocab_size}, "
              f"{name_of(m.layers[0].attention.inner_attention)}, rope theta {m.layers[0].attention.rope.theta:g}), "
              f"seq_len {t.seq_len}, batch {t.local_batch_size}/{t.global_batch_size}, steps {t.steps}, "
              f"{t.mixed_precision_param}, AC {name_of(cfg.activation_checkpoint)}, compile {cfg.compile.enable}, "
              f"loader {name_of(cfg.dataloader)}, checkpoint {cfg.checkpoint.enable}")
    print(f"configs: both loaders' first input row starts with document 0's {len(first)} tokens: {all(same)}")
    if not all(same):
        sys.exit("configs: the two runs would not read the same data")


def compat_env(work: Path) -> dict:
    """torchtitan 0.3.0 calls torch.distributed.set_timeout (torch 2.14); on an older CUDA torch the
    private _set_pg_timeout does the same job, patched in through a sitecustomize for the runs only."""
    import torch.distributed as dist
    if hasattr(dist, "set_timeout"):
        return {}
    shim = work / "compat"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(
        "import torch.distributed as d\nif not hasattr(d, 'set_timeout'):\n"
        "    d.set_timeout = lambda timeout, group=None: d.distributed_c10d._set_pg_timeout(timeout, group)\n")
    print(f"compat: torch lacks torch.distributed.set_timeout: shimmed via {shim}/sitecustomize.py")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)}


def stock(work: Path, timeout: float) -> int:
    env = {**os.environ, **compat_env(work), SPEC_ENV: str(work / "stock" / "spec.json")}
    env.setdefault("OMP_NUM_THREADS", "1")  # as launch() sets it for the compiled run
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "benchmarks"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--rdzv_backend", "c10d",
           "--rdzv_endpoint=localhost:0", "-m", "torchtitan.train", "--module", "gpu_check", "--config", "stock_config"]
    with open(work / "stock" / "train.log", "w") as log:
        try:
            return subprocess.run(cmd, check=False, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return 124  # gpu_check.sh's `timeout` kills what torchrun left


def compiled(work: Path, timeout: float) -> int:
    from qwen3_recipe.train.launch import launch
    os.environ.setdefault("QWEN3_RECIPE_NPROC", "1")  # one GPU, as the torchtitan run
    return launch(work / "compiled" / "job.json", timeout=timeout, env=compat_env(work),
                  log_path=work / "compiled" / "train.log").returncode


LINE = re.compile(r"step:\s*(\d+).*?memory:\s*([\d.]+)GiB.*?tps:\s*([\d,]+).*?mfu:\s*([\d.]+|N/A)")


def parse_log(text: str) -> list[dict]:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [{"step": int(m[1]), "memory_gib": float(m[2]), "tps": float(m[3].replace(",", "")),
             "mfu": None if m[4] == "N/A" else float(m[4])} for m in LINE.finditer(text)]


def summarize(rows: list[dict], skip: int) -> dict:
    kept = [r for r in rows if r["step"] > skip] or rows[len(rows) // 2:]

    def mean(k: str) -> float | None:
        return sum(r[k] for r in kept) / len(kept) if kept and all(r[k] is not None for r in kept) else None
    return {"steps_logged": len(rows), "steps_averaged": len(kept), "tps": mean("tps"), "mfu": mean("mfu"),
            "peak_memory_gib": max((r["memory_gib"] for r in rows), default=None)}


def summary(work: Path, skip: int) -> None:
    spec, res, fmt = json.loads((work / "stock" / "spec.json").read_text()), {}, lambda v, f: "-" if v is None else format(v, f)
    print(f"\n{'run':12s}{'loader':16s}{'steps':>7s}{'tps (mean)':>14s}{'mfu % (mean)':>14s}{'peak GiB':>10s}")
    for name, folder, loader in (("compiled", "compiled", "packed tokens"), ("torchtitan", "stock", spec["loader"])):
        log = work / folder / "train.log"
        r = res[name] = {"loader": loader, **summarize(parse_log(log.read_text(errors="replace")) if log.exists() else [], skip)}
        print(f"{name:12s}{loader:16s}{r['steps_logged']:>7d}{fmt(r['tps'], ',.0f'):>14s}"
              f"{fmt(r['mfu'], '.2f'):>14s}{fmt(r['peak_memory_gib'], '.1f'):>10s}")
    a, b = res["compiled"], res["torchtitan"]
    ratio = a["tps"] / b["tps"] if a["tps"] and b["tps"] else None
    mfu_ratio = a["mfu"] / b["mfu"] if a["mfu"] and b["mfu"] else None
    print(f"ratio compiled / torchtitan: tps {fmt(ratio, '.3f')}x, mfu {fmt(mfu_ratio, '.3f')}x (mean over steps > {skip}; seq_len "
          f"{spec['seq_len']}, batch {spec['batch']}, {spec['steps']} steps); {work / 'summary.json'}")
    (work / "summary.json").write_text(json.dumps({**res, "ratio_tps": ratio, "ratio_mfu": mfu_ratio}, indent=1))


def selftest() -> None:  # the parser on torchtitan 0.3.0's log line (components/metrics.py), colours included
    rows = parse_log("\x1b[31mstep:  7  \x1b[32mloss:  9.1  grad_norm:  1.2  \x1b[36mmemory: 41.20GiB(29.47%)  "
                     "\x1b[34mtps: 61,234  tflops: 301.5  \x1b[35mmfu: 30.49%\x1b[39m\n"
                     "step:  8  loss: 9.0  grad_norm: 1.1  memory: 41.20GiB(29.47%)  tps: 61,000  tflops: 3.0  mfu: N/A")
    assert rows[0] == {"step": 7, "memory_gib": 41.2, "tps": 61234.0, "mfu": 30.49} and rows[1]["mfu"] is None, rows
    assert summarize(rows[:1], 5)["tps"] == 61234.0
    print("selftest: log parser ok")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["prepare", "configs", "compiled", "stock", "summary", "selftest"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/gpu_check"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--loader", choices=["hf_text", "packed"], default="hf_text")
    ap.add_argument("--skip", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=240)
    a = ap.parse_args()
    if a.phase == "prepare":
        prepare(a.work, a.steps, a.batch, a.loader)
    elif a.phase in ("compiled", "stock"):
        rc = (compiled if a.phase == "compiled" else stock)(a.work, a.timeout)
        print(f"{a.phase}: exit {rc}, log {a.work / a.phase / 'train.log'}")
        sys.exit(rc)
    else:
        {"configs": lambda: configs(a.work), "summary": lambda: summary(a.work, a.skip), "selftest": selftest}[a.phase]()


if __name__ == "__main__":
    main()
