"""SFT data: Qwen3-template rendering with loss only on assistant tokens, packing, the torchtitan
loader (positions, labels, resume, dp shards) and torchtitan's loss over its batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("torchtitan")

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from qwen3_recipe.tokenizer.qwen3 import save_tokenizer, train_bpe  # noqa: E402
from qwen3_recipe.train.sft_data import encode, expand, prepare_sft, read_conversations  # noqa: E402
from qwen3_recipe.train.sft_loader import SFTPackedDataLoader  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_CHAT = REPO / "datasets_spec/data/tiny_chat.jsonl"
IGNORE = -100

SYS = {"role": "system", "content": "Be brief."}
THINK = {"messages": [SYS, {"role": "user", "content": "What is 2+2? /think"},
                      {"role": "assistant", "content": "It is 4 ☃.", "reasoning_content": "2 plus 2 is 4."}]}
NO_THINK = {"messages": [{"role": "user", "content": "What is 3+3? /no_think"},
                         {"role": "assistant", "content": "It is 6."}]}
TWO_TURNS = {"messages": [
    {"role": "user", "content": "What is 2+2? /think"},
    {"role": "assistant", "content": "It is 4.", "reasoning_content": "2 plus 2 is 4."},
    {"role": "user", "content": "And 3+3? /think"},
    {"role": "assistant", "content": "It is 6.", "reasoning_content": "3 plus 3 is 6."}]}
A1 = "<think>\n2 plus 2 is 4.\n</think>\n\nIt is 4.<|im_end|>"
A2 = "<think>\n3 plus 3 is 6.\n</think>\n\nIt is 6.<|im_end|>"
U1 = "<|im_start|>user\nWhat is 2+2? /think<|im_end|>\n"
U2 = "<|im_start|>user\nAnd 3+3? /think<|im_end|>\n"


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    texts = [m.get("reasoning_content") or m["content"] for c in read_conversations(TINY_CHAT)
             for m in c["messages"]]
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    save_tokenizer(train_bpe(texts, 512), out, 4096)
    return out


@pytest.fixture(scope="module")
def hf(tok_dir):
    return AutoTokenizer.from_pretrained(str(tok_dir))


def runs(hf, ids, keep) -> list[str]:
    """Decoded maximal runs of consecutive ids where keep is true."""
    out, cur = [], []
    for i, k in zip(ids, keep):
        if k:
            cur.append(int(i))
        elif cur:
            out.append(hf.decode(cur)), cur.clear()
    return out + ([hf.decode(cur)] if cur else [])


def samples(hf, conv, multi_turn="split"):
    return [(msgs, mode, *encode(hf, msgs, last_only=multi_turn == "split"))
            for msgs, mode, _ in expand(conv, multi_turn)]


# -- (a) only assistant tokens carry loss -----------------------------------------------------

def test_think_sample_masks_exactly_the_assistant_turn(hf):
    (msgs, mode, ids, mask), = samples(hf, THINK)
    assert mode == "think"
    # the ids are transformers' own apply_chat_template tokenization of the whole text
    assert ids.tolist() == hf.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
    assert hf.decode(ids) == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                              "<|im_start|>user\nWhat is 2+2? /think<|im_end|>\n<|im_start|>assistant\n"
                              "<think>\n2 plus 2 is 4.\n</think>\n\nIt is 4 ☃.<|im_end|>\n")
    assert runs(hf, ids, mask) == ["<think>\n2 plus 2 is 4.\n</think>\n\nIt is 4 ☃.<|im_end|>"]


def test_no_think_sample_trains_the_empty_think_block(hf):
    (_, mode, ids, mask), = samples(hf, NO_THINK)
    assert mode == "no_think"
    assert runs(hf, ids, mask) == ["<think>\n\n</think>\n\nIt is 6.<|im_end|>"]


@pytest.mark.parametrize("conv", [
    {"messages": [{"role": "user", "content": "What is 2+2? /think then /no_think"}, *THINK["messages"][2:]]},
    {"enable_thinking": False, "messages": THINK["messages"]},
    {"mode": "no_think", "messages": THINK["messages"]},
])
def test_declared_no_think_strips_reasoning(hf, conv):
    (_, mode, ids, mask), = samples(hf, conv)
    assert mode == "no_think"
    assert runs(hf, ids, mask) == ["<think>\n\n</think>\n\nIt is 4 ☃.<|im_end|>"]


def test_two_turns_split_one_sample_per_turn_reasoning_on_the_trained_turn(hf):
    (_, m1, ids1, mask1), (_, m2, ids2, mask2) = samples(hf, TWO_TURNS)
    assert (m1, m2) == ("think", "think")
    assert hf.decode(ids1) == U1 + "<|im_start|>assistant\n" + A1 + "\n"
    assert runs(hf, ids1, mask1) == [A1]
    # turn 1 is context as the template renders it at inference (reasoning dropped), no loss
    assert hf.decode(ids2) == U1 + "<|im_start|>assistant\nIt is 4.<|im_end|>\n" + U2 + \
        "<|im_start|>assistant\n" + A2 + "\n"
    assert runs(hf, ids2, mask2) == [A2]


def test_two_turns_last_mode_trains_only_the_turns_after_the_last_query(hf):
    (_, mode, ids, mask), = samples(hf, TWO_TURNS, "last")
    assert mode == "think" and runs(hf, ids, mask) == [A2]


def test_tool_steps_after_the_last_query_carry_loss_tool_responses_do_not(hf):
    conv = {"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "reasoning_content": "Call it.",
         "tool_calls": [{"function": {"name": "w", "arguments": {"c": "P"}}}]},
        {"role": "tool", "content": "Sunny"},
        {"role": "assistant", "content": "Sunny."}]}
    call = '<think>\nCall it.\n</think>\n\n<tool_call>\n{"name": "w", "arguments": {"c": "P"}}\n</tool_call><|im_end|>'
    (_, _, ids, mask), = samples(hf, conv, "last")
    assert runs(hf, ids, mask) == [call, "<think>\n\n</think>\n\nSunny.<|im_end|>"]
    assert [runs(hf, i, m) for _, _, i, m in samples(hf, conv)] == \
        [[call], ["<think>\n\n</think>\n\nSunny.<|im_end|>"]]


def test_loader_labels_are_exactly_the_assistant_tokens(tok_dir, hf, tmp_path):
    stats = prepare_sft([THINK, NO_THINK, TWO_TURNS], tok_dir, tmp_path, seq_len=512, seed=0)
    assert (stats["samples"], stats["rows"], stats["think"], stats["no_think"]) == (4, 1, 3, 1)
    (x, y), = list(SFTPackedDataLoader.Config(dataset_path=str(tmp_path), infinite=False).build(
        dp_world_size=1, dp_rank=0, tokenizer=None, seq_len=512, local_batch_size=1))
    got = runs(hf, y[0].tolist(), (y[0] != IGNORE).tolist())
    assert sorted(got) == sorted([A1, A2, "<think>\n\n</think>\n\nIt is 6.<|im_end|>",
                                  "<think>\n2 plus 2 is 4.\n</think>\n\nIt is 4 ☃.<|im_end|>"])
    assert int((y != IGNORE).sum()) == stats["loss_tokens"]


# -- (b) packing ------------------------------------------------------------------------------

LONG = {"messages": [{"role": "user", "content": "What is 9 × 9? /think"},
                     {"role": "assistant", "content": "81.", "reasoning_content": "9 × 9 = 81.\n" * 60}]}
SEQ = 256


@pytest.fixture(scope="module")
def packed(tok_dir, tmp_path_factory):
    convs = list(read_conversations(TINY_CHAT))[:120] + [LONG]
    out = tmp_path_factory.mktemp("sft")
    return out, convs, prepare_sft(convs, tok_dir, out, seq_len=SEQ, seed=3)


def test_packing_keeps_samples_whole_and_truncates_only_the_long_one(packed, hf):
    out, convs, stats = packed
    tokens, mask = np.load(out / "tokens.npy"), np.load(out / "loss_mask.npy")
    ends = np.load(out / "sample_ends.npy").astype(int)
    meta = json.loads((out / "meta.json").read_text())
    assert tokens.dtype == np.uint32 and mask.dtype == np.uint8 and tokens.shape == mask.shape
    assert tokens.shape[1] == meta["row_len"] == SEQ + 1 and meta["stats"] == stats
    assert stats["truncated"] == 1 and stats["invalid"] == stats["dropped_no_loss"] == 0
    assert stats["loss_tokens"] == int(mask.sum()) and stats["think"] + stats["no_think"] == stats["samples"]
    assert set(range(0, tokens.size + 1, SEQ + 1)) <= {0, *ends}  # no segment crosses a row
    flat_t, flat_m = tokens.reshape(-1), mask.reshape(-1)
    segments = [(flat_t[s:e], flat_m[s:e]) for s, e in zip([0, *ends[:-1]], ends)]
    real = [(t, m) for t, m in segments if t[0] != meta["pad_id"]]
    assert all((t == meta["pad_id"]).all() and not m.any() for t, m in segments if t[0] == meta["pad_id"])
    expected = [(i[:SEQ + 1], m[:SEQ + 1]) for c in convs for _, _, i, m in samples(hf, c)]
    key = lambda s: (s[0].tobytes(), s[1].tobytes())  # noqa: E731
    assert sorted(map(key, real)) == sorted(map(key, expected))  # same samples, whole, same masks
    assert stats["padding"] == sum(len(t) for t, _ in segments) - sum(len(t) for t, _ in real)


def test_packing_is_deterministic_by_seed(packed, tok_dir, tmp_path):
    out, convs, _ = packed
    prepare_sft(convs, tok_dir, tmp_path / "same", seq_len=SEQ, seed=3)
    prepare_sft(convs, tok_dir, tmp_path / "other", seq_len=SEQ, seed=4)
    ref = np.load(out / "tokens.npy")
    assert np.array_equal(np.load(tmp_path / "same/tokens.npy"), ref)
    other = np.load(tmp_path / "other/tokens.npy")
    assert not (other.shape == ref.shape and np.array_equal(other, ref))


def test_loader_positions_restart_per_sample_and_labels_shift(packed):
    out, _, _ = packed
    tokens, mask = np.load(out / "tokens.npy").astype(np.int64), np.load(out / "loss_mask.npy")
    ends = set(np.load(out / "sample_ends.npy").astype(int).tolist())
    loader = SFTPackedDataLoader.Config(dataset_path=str(out), infinite=False).build(
        dp_world_size=1, dp_rank=0, tokenizer=None, seq_len=SEQ, local_batch_size=1)
    for r, (x, y) in enumerate(loader):
        inp, pos, lab = x["input"][0].numpy(), x["positions"][0].numpy(), y[0].numpy()
        assert np.array_equal(inp, tokens[r, :-1])
        assert np.array_equal(lab, np.where(mask[r, 1:] == 1, tokens[r, 1:], IGNORE))
        starts = [i for i in range(SEQ) if i == 0 or r * (SEQ + 1) + i in ends]
        expect = np.concatenate([np.arange(b - a) for a, b in zip(starts, starts[1:] + [SEQ])])
        assert np.array_equal(pos, expect)
        for a in starts[1:]:  # the label entering a new sample is never trained
            assert lab[a - 1] == IGNORE
    assert r + 1 == len(tokens)


def test_seq_len_mismatch_is_refused(packed):
    out, _, _ = packed
    with pytest.raises(ValueError, match="packed for seq_len 256"):
        SFTPackedDataLoader.Config(dataset_path=str(out)).build(
            dp_world_size=1, dp_rank=0, seq_len=128, local_batch_size=1)


# -- (c) resume and dp shards -----------------------------------------------------------------

def build(out, rank=0, world=1, batch=2):
    return SFTPackedDataLoader.Config(dataset_path=str(out)).build(
        dp_world_size=world, dp_rank=rank, tokenizer=None, seq_len=SEQ, local_batch_size=batch)


@pytest.mark.parametrize("steps", [1, 3, 40])  # 40 batches of 2 cross epoch boundaries
def test_resume_state_round_trips(packed, steps):
    out, _, _ = packed
    first = build(out)
    it = iter(first)
    for _ in range(steps):
        next(it)
    state = first.state_dict()
    want = next(it)
    second = build(out)
    second.load_state_dict(state)
    got = next(iter(second))
    assert torch.equal(got[0]["input"], want[0]["input"]) and torch.equal(got[1], want[1])
    assert torch.equal(got[0]["positions"], want[0]["positions"])


def test_dp_ranks_read_disjoint_equal_shares(packed):
    out, _, _ = packed
    n = len(np.load(out / "tokens.npy"))
    cfg = SFTPackedDataLoader.Config(dataset_path=str(out), infinite=False)
    seen = [[tuple(x["input"][0].tolist()) for x, _ in cfg.build(
        dp_world_size=2, dp_rank=r, seq_len=SEQ, local_batch_size=1)] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == n // 2 and not set(seen[0]) & set(seen[1])


# -- (d) torchtitan's loss is the mean over assistant tokens only -----------------------------

def test_torchtitan_loss_is_the_mean_over_unmasked_tokens(packed):
    from torchtitan.components.loss import IGNORE_INDEX, ChunkedLossWrapper, CrossEntropyLoss

    assert IGNORE_INDEX == IGNORE
    out, _, _ = packed
    x, labels = next(iter(build(out, batch=2)))
    sel = labels != IGNORE
    valid = sel.sum()  # what the trainer passes as global_valid_tokens
    assert 0 < int(valid) < labels.numel()
    torch.manual_seed(0)
    vocab, dim = 512, 16
    lm_head = torch.nn.Linear(dim, vocab, bias=False)
    hidden = torch.randn(*labels.shape, dim, requires_grad=True)
    logits = lm_head(hidden)
    by_hand = -torch.log_softmax(logits.float(), -1)[sel].gather(-1, labels[sel][:, None]).mean()

    ce = CrossEntropyLoss.Config(global_vocab_size=vocab).build()
    leaf = logits.detach().requires_grad_(True)
    loss, _ = ce(leaf, labels, valid)
    torch.testing.assert_close(loss, by_hand)
    loss.backward()
    assert leaf.grad[~sel].abs().max() == 0 and leaf.grad[sel].abs().max() > 0

    chunked = ChunkedLossWrapper.Config(loss_fn=CrossEntropyLoss.Config(global_vocab_size=vocab)).build()
    chunked.set_lm_head(lm_head)
    loss_c, _ = chunked(hidden, labels, valid)
    torch.testing.assert_close(loss_c, by_hand.detach())
    loss_c.backward()
    assert hidden.grad[~sel].abs().max() == 0 and hidden.grad[sel].abs().max() > 0


def test_chat_sets_from_datasets_spec_are_decontaminated(tmp_path):
    """An SFT stage reading a datasets_spec/ chat set drops the conversations that overlap a
    benchmark (8-gram, the data jobs' definition) and records each one's fate in `prompts`; a stage
    reading only synth datasets (decontaminated by their job) takes no benchmark inputs."""
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    from qwen3_recipe.train.sft import conversations
    from qwen3_recipe.train.sft_plan import sft_plan

    tiny = REPO / "recipes" / "tiny.yaml"
    plan = make_plan(load_recipe(tiny, ["posttrain.stages.fusion.data=[fusion_mix, tiny_chat]"]), tmp_path / "run")
    fusion, cold = plan["posttrain.fusion"].job, plan["posttrain.cold_start"].job
    assert {"benchmark:tiny_arith", "benchmark:tiny_sums"} <= set(fusion.inputs)
    assert not any(k.startswith("benchmark:") for k in cold.inputs)  # synth data only

    class Rows:
        def __init__(self):
            self.rows = []

        def add(self, table, **row):
            assert table == "prompts"
            self.rows.append(row)

    rec = Rows()
    data = sft_plan(plan["posttrain.fusion"], plan)["data"]  # what compile writes for the stage
    assert data["decontamination"]["benchmarks"] == ["tiny_arith", "tiny_compose", "tiny_sums"]
    data["sources"] = [s for s in data["sources"] if s["name"] == "tiny_chat"]
    kept = list(conversations(plan, data, rec))
    dropped = [r for r in rec.rows if r["decision"] == "dropped"]
    assert len(rec.rows) == 500 and len(kept) + len(dropped) == 500 and dropped
    for r in dropped:
        hits = json.loads(r["details"])
        assert r["reason"] == "contaminated" and hits and all(h["benchmark"] in ("tiny_arith", "tiny_sums") for h in hits)
    assert {c["id"] for c in kept}.isdisjoint(r["prompt_id"] for r in dropped)
