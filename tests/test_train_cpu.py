"""Real torchtitan 0.3.0 on CPU: a tiny Qwen3 trains on datatrove-format packed tokens, resumes
from its checkpoint, and the tokens loader yields per-document positions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torchtitan")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


# --------------------------------------------------------------------------- fixtures

def make_tokenizer(folder: Path, texts: list[str]) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": "<|im_end|>", "bos_token": None, "pad_token": "<|endoftext|>",
        "add_bos_token": False, "model_max_length": 4096,
        "tokenizer_class": "PreTrainedTokenizerFast"}))
    return folder


def sentences(n: int = 1500, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    subjects = ["the cat", "a dog", "my friend", "the teacher", "our team", "the bird"]
    verbs = ["sees", "likes", "finds", "paints", "follows", "remembers"]
    objects = ["the red ball", "a small house", "the old tree", "a blue car", "the river"]
    tails = ["today.", "every morning.", "near the park.", "with great care.", "again."]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(tails)}"
            for _ in range(n)]


def write_packed(folder: Path, docs: list[list[int]], name: str = "train") -> Path:
    """datatrove DocumentTokenizer's layout: uint16 tokens + uint64 document ends."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{name}_00000_unshuffled.ds"
    np.array([t for d in docs for t in d], dtype=np.uint16).tofile(stem)
    np.cumsum([len(d) for d in docs]).astype(np.uint64).tofile(f"{stem}.index")
    return folder


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict:
    from tokenizers import Tokenizer

    root = tmp_path_factory.mktemp("train_cpu")
    texts = sentences()
    tok_dir = make_tokenizer(root / "tokenizer", texts)
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    docs = [enc.ids + [eos] for enc in tok.encode_batch(texts)]
    tokens_dir = write_packed(root / "tokens", docs)
    return {"root": root, "tokenizer_dir": tok_dir, "tokens_dir": tokens_dir,
            "vocab": tok.get_vocab_size(), "n_tokens": sum(map(len, docs))}


def job(assets: dict, name: str, *, steps: int, interval: int, export_hf: bool = False) -> dict:
    return {
        "arch": {"hidden_size": 64, "num_layers": 3, "num_heads": 2, "num_kv_heads": 1,
                 "head_dim": 32, "intermediate_size": 192, "vocab_size": 512,
                 "tie_embeddings": True, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
                 "max_position_embeddings": 256},
        "seq_len": 64, "batch_tokens": 512, "steps": steps,
        "lr": {"peak": 3e-3, "warmup_steps": 2, "decay": "cosine", "min_lr_ratio": 0.1},
        "optimizer": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
                      "grad_clip": 1.0},
        "data": {"tokens_dir": str(assets["tokens_dir"])},
        "tokenizer_dir": str(assets["tokenizer_dir"]),
        "dump_folder": str(assets["root"] / name),
        "checkpoint": {"interval": interval, "model_only": True},
        "seed": 0, "export_hf": export_hf, "mixed_precision": "fp32", "fsdp": "none",
    }


def run(assets: dict, spec: dict, tag: str):
    from qwen3_recipe.train.launch import launch

    path = assets["root"] / f"{tag}.json"
    path.write_text(json.dumps(spec))
    result = launch(path, timeout=300)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-6000:])
    return result


def metrics(spec: dict) -> list[dict]:
    lines = (Path(spec["dump_folder"]) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


# --------------------------------------------------------------------------- tests

def test_tokens_loader_positions_and_resume(tmp_path):
    from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader

    # documents of 3, 5 and 4 tokens: 1 2 3 | 4 5 6 7 8 | 9 10 11 12
    folder = write_packed(tmp_path, [[1, 2, 3], [4, 5, 6, 7, 8], [9, 10, 11, 12]])
    cfg = PackedTokensDataLoader.Config(dataset_path=str(folder), infinite=False)

    def build():
        return cfg.build(dp_world_size=1, dp_rank=0, tokenizer=None, seq_len=4,
                         local_batch_size=1)

    batches = list(build())
    assert [b[0]["input"].tolist() for b in batches] == [[[1, 2, 3, 4]], [[5, 6, 7, 8]]]
    # windows of seq_len+1 tokens every seq_len tokens: (12 - 1) // 4 = 2 windows
    assert len(batches) == 2
    (x0, y0), (x1, y1) = batches
    assert x0["positions"].tolist() == [[0, 1, 2, 0]]       # doc 2 starts at index 3
    assert y0.tolist() == [[2, 3, 4, 5]]
    assert x1["positions"].tolist() == [[0, 1, 2, 3]]       # window starts mid doc 2
    assert y1.tolist() == [[6, 7, 8, 9]]
    assert x0["input"].dtype.is_floating_point is False and x0["input"].dtype.itemsize == 8

    # seq_len 3 over the same stream: a window starting exactly at a document start
    b3 = list(cfg.build(dp_world_size=1, dp_rank=0, tokenizer=None, seq_len=3,
                        local_batch_size=1))
    assert [b[0]["positions"].tolist()[0] for b in b3] == [[0, 1, 2], [0, 1, 2], [0, 1, 0]]

    # read position survives state_dict / load_state_dict (what the checkpointer stores)
    first = build()
    it = iter(first)
    next(it)
    state = first.state_dict()
    second = build()
    second.load_state_dict(state)
    (x, _), = [next(iter(second))]
    assert x["input"].tolist() == [[5, 6, 7, 8]]

    # two data-parallel ranks read disjoint windows
    r0 = list(cfg.build(dp_world_size=2, dp_rank=0, seq_len=3, local_batch_size=1))
    r1 = list(cfg.build(dp_world_size=2, dp_rank=1, seq_len=3, local_batch_size=1))
    assert [b[0]["input"].tolist() for b in r0] == [[[1, 2, 3]], [[7, 8, 9]]]
    assert [b[0]["input"].tolist() for b in r1] == [[[4, 5, 6]]]

    # a stage reads steps x batch + 1 tokens: 2 windows of 4 need 9 of the 12; 13 are refused up front
    from dataclasses import replace
    assert len(list(replace(cfg, min_tokens=9).build(dp_world_size=1, dp_rank=0, seq_len=4,
                                                     local_batch_size=1))) == 2
    with pytest.raises(ValueError, match="holds 12 tokens; this run reads 13"):
        replace(cfg, min_tokens=13).build(dp_world_size=1, dp_rank=0, seq_len=4, local_batch_size=1)


def test_uint32_tokens(tmp_path):
    from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader

    stem = tmp_path / "big_00000_unshuffled.ds"
    np.array([70000, 70001, 70002, 5, 6], dtype=np.uint32).tofile(stem)
    np.array([3, 5], dtype=np.uint64).tofile(f"{stem}.index")

    class Tok:
        def get_vocab_size(self):
            return 151_669

    cfg = PackedTokensDataLoader.Config(dataset_path=str(tmp_path), infinite=False)
    (x, y), = list(cfg.build(dp_world_size=1, dp_rank=0, tokenizer=Tok(), seq_len=4,
                             local_batch_size=1))
    assert x["input"].tolist() == [[70000, 70001, 70002, 5]]
    assert x["positions"].tolist() == [[0, 1, 2, 0]]


def test_sdpa_document_mask_matches_per_document_attention():
    import torch
    import torch.nn.functional as F

    from qwen3_recipe.train.cpu import SDPADocumentAttention
    from torchtitan.models.common.attention import create_varlen_metadata_for_document

    torch.manual_seed(0)
    positions = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]])
    q, k, v = (torch.randn(2, 6, 2, 8) for _ in range(3))
    attn = SDPADocumentAttention.Config().build()
    out = attn(q, k, v, attention_masks=create_varlen_metadata_for_document(positions))
    # reference: causal attention run separately on each document
    for b, spans in [(0, [(0, 3), (3, 5), (5, 6)]), (1, [(0, 6)])]:
        for s, e in spans:
            ref = F.scaled_dot_product_attention(q[b:b + 1, s:e].transpose(1, 2),
                                                 k[b:b + 1, s:e].transpose(1, 2),
                                                 v[b:b + 1, s:e].transpose(1, 2), is_causal=True)
            torch.testing.assert_close(out[b:b + 1, s:e], ref.transpose(1, 2))


def test_trainer_config_builds(assets):
    from qwen3_recipe.train.job import trainer_config

    cfg = trainer_config(job(assets, "cfg", steps=3, interval=5))
    assert cfg.training.seq_len == 64 and cfg.training.global_batch_size == 8
    assert cfg.model_spec.model.layers[0].attention.head_dim == 32
    assert cfg.model_spec.model.enable_weight_tying


def test_train_loss_falls(assets):
    spec = job(assets, "train", steps=20, interval=100, export_hf=True)
    run(assets, spec, "train")
    rows = metrics(spec)
    losses = [r["loss_metrics/global_avg_loss"] for r in rows]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert losses[0] > 5.5                       # ~ln(512) = 6.24 at init
    assert min(losses[-3:]) < losses[0] - 1.0, losses
    final = Path(spec["dump_folder"]) / "checkpoint" / "step-20"
    assert (final / "model.safetensors.index.json").exists() or list(final.glob("*.safetensors"))
    hf = json.loads((final / "config.json").read_text())
    assert hf["model_type"] == "qwen3" and hf["head_dim"] == 32
    assert (final / "tokenizer.json").exists()


def test_resume_continues_from_last_checkpoint(assets):
    spec = job(assets, "resume", steps=10, interval=5)
    run(assets, spec, "resume_a")
    ckpt = Path(spec["dump_folder"]) / "checkpoint"
    assert {p.name for p in ckpt.iterdir()} >= {"step-5", "step-10"}
    first = metrics(spec)
    assert [r["step"] for r in first] == list(range(1, 11))

    spec["steps"] = 15
    result = run(assets, spec, "resume_b")
    log = result.stdout + result.stderr
    assert "Training starts at step 11" in log, log[-3000:]
    rows = metrics(spec)
    assert [r["step"] for r in rows[10:]] == list(range(11, 16))
    # the resumed run continues from the trained weights, not from a fresh init
    assert rows[10]["loss_metrics/global_avg_loss"] < first[0]["loss_metrics/global_avg_loss"] - 0.5
    assert (ckpt / "step-15").is_dir()


def test_second_stage_warm_starts_from_exported_stage(assets):
    previous = assets["root"] / "train" / "checkpoint" / "step-20"
    if not previous.is_dir():
        pytest.skip("needs test_train_loss_falls's export")
    spec = job(assets, "stage2", steps=2, interval=100)
    spec["seq_len"] = 128
    spec["checkpoint"]["initial_load_path"] = str(previous)
    result = run(assets, spec, "stage2")
    assert "Training starts at step 1" in result.stdout + result.stderr
    first = metrics(spec)[0]["loss_metrics/global_avg_loss"]
    assert first < 5.0, first                    # a fresh model starts at ~6.2


def test_exported_checkpoint_logits_match_torchtitan(assets):
    """The HF export (safetensors + our config.json) loads in transformers and gives torchtitan's
    logits on the same input (torchtitan model built from the same spec, weights from the export)."""
    import torch
    from safetensors.torch import load_file
    from torchtitan.models.common.attention import create_varlen_metadata_for_document
    from torchtitan.models.qwen3.state_dict_adapter import Qwen3StateDictAdapter
    from transformers import AutoModelForCausalLM

    from qwen3_recipe.train.cpu import SDPADocumentAttention
    from qwen3_recipe.train.model import model_config

    final = assets["root"] / "train" / "checkpoint" / "step-20"
    if not final.is_dir():
        pytest.skip("needs test_train_loss_falls's export")
    spec = job(assets, "train", steps=20, interval=100)
    cfg = model_config(spec["arch"])
    for layer in cfg.layers:
        layer.attention.inner_attention = SDPADocumentAttention.Config()
    titan = cfg.build()
    hf_state = {}
    for f in final.glob("*.safetensors"):
        hf_state |= load_file(str(f))
    titan.load_state_dict(Qwen3StateDictAdapter(cfg, None).from_hf(hf_state), strict=False)
    titan.eval()
    hf = AutoModelForCausalLM.from_pretrained(str(final), torch_dtype=torch.float32).eval()

    tokens = torch.randint(0, spec["arch"]["vocab_size"], (1, 48), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(48)[None]
    with torch.no_grad():
        ours = titan(tokens, positions, create_varlen_metadata_for_document(positions))
        theirs = hf(tokens).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_one_process_runs_the_trainer_without_torchrun(monkeypatch):
    """One process (a CPU, one GPU) starts torchtitan.train directly, told what torchrun would tell
    it; more processes on this machine go through torchrun (the runs above train this way)."""
    from qwen3_recipe.train.launch import single_process_env, torchrun_command

    monkeypatch.delenv("QWEN3_RECIPE_HEAD", raising=False)
    monkeypatch.setenv("QWEN3_RECIPE_NPROC", "1")
    cmd = torchrun_command({})
    assert "torch.distributed.run" not in cmd and cmd[1:3] == ["-m", "torchtitan.train"]
    env = single_process_env()
    assert env["RANK"] == "0" and env["WORLD_SIZE"] == "1" and int(env["MASTER_PORT"]) > 0
    monkeypatch.setenv("QWEN3_RECIPE_NPROC", "2")
    cmd = torchrun_command({})
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in cmd
