"""Thinking-mode fusion, multi-turn: the synth job's two-turn mode-switch conversations
(qwen3_recipe/synth/fusion.py) - how they are built, that the recipe field leaves other recipes'
fingerprints alone, and that SFT renders them with loss on the right turn in the right mode."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from qwen3_recipe.synth.fusion import mode_switch_conversations, switch_count, with_flag
from qwen3_recipe.synth.sampling import FLAGS

REPO = Path(__file__).resolve().parents[1]


def sample_row(prompt: int, mode: str, k: int = 0) -> dict:
    """A kept row as synth/job.py's dataset_row writes it for a `mode: both` job."""
    thinking = f"Add {prompt} and {prompt} step by step." if mode == "think" else ""
    return {"id": f"p{prompt}/{mode}/{k}", "source": "tiny_prompts", "prompt_id": f"p{prompt}",
            "messages": [{"role": "user", "content": f"What is {prompt}+{prompt}?{FLAGS[mode]}",
                          "reasoning_content": ""},
                         {"role": "assistant", "content": f"It is {2 * prompt}.", "reasoning_content": thinking}],
            "mode": mode, "teacher": "t", "sampling": "{}", "thinking_budget": 64 if mode == "think" else None,
            "budget_cut": False, "verified": True, "majority_vote": False, "answer": str(2 * prompt),
            "gold": str(2 * prompt), "built_from": None}


def both_rows(prompts: int) -> list[dict]:
    return [sample_row(p, m) for p in range(prompts) for m in ("think", "no_think")]


def turn_modes(row: dict) -> list[str]:
    return ["no_think" if m["content"].endswith("/no_think") else "think"
            for m in row["messages"] if m["role"] == "user"]


# -- the builder ---------------------------------------------------------------------------------

def test_with_flag_replaces_a_trailing_flag():
    assert with_flag("What is 2+2?", "think") == "What is 2+2? /think"
    assert with_flag("What is 2+2? /think", "no_think") == "What is 2+2? /no_think"
    assert with_flag("What is 2+2? /no_think /think ", "think") == "What is 2+2? /think"
    assert with_flag("Explain /think mode.", "no_think") == "Explain /think mode. /no_think"


def test_switch_rows_join_two_prompts_in_opposite_modes():
    rows = both_rows(12)
    out = mode_switch_conversations(rows, 0.25, seed=7)
    assert len(out) == switch_count(24, 0.25) == 8   # 8 of 24 + 8 rows: a quarter of the dataset
    by_id = {r["id"]: r for r in rows}
    used = Counter()
    for i, row in enumerate(out):
        first, second = (by_id[s] for s in row["built_from"])
        used.update(row["built_from"])
        assert row["id"] == f"{first['id']}+{second['id']}"
        assert first["prompt_id"] != second["prompt_id"]
        assert {first["mode"], second["mode"]} == {"think", "no_think"}
        # directions alternate: think -> no_think, then no_think -> think
        assert turn_modes(row) == ([first["mode"], second["mode"]]) == \
            (["think", "no_think"] if i % 2 == 0 else ["no_think", "think"])
        u1, a1, u2, a2 = row["messages"]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user", "assistant"]
        assert (u1["content"], a1) == (first["messages"][0]["content"], first["messages"][1])
        assert (u2["content"], a2) == (second["messages"][0]["content"], second["messages"][1])
        assert row["mode"] is None and row["prompt_id"] is None and row["verified"]
        assert row["thinking_budget"] == 64 and row["answer"] is None
        assert set(row) == set(rows[0])   # same columns: one Parquet schema
    assert max(used.values()) == 1        # every sample joins at most one conversation


def test_switch_rows_are_seeded():
    rows = both_rows(12)
    assert mode_switch_conversations(rows, 0.25, seed=7) == mode_switch_conversations(list(rows), 0.25, seed=7)
    assert mode_switch_conversations(rows, 0.25, seed=7) != mode_switch_conversations(rows, 0.25, seed=8)


def test_switch_rows_are_capped_by_samples_and_need_two_prompts():
    rows = both_rows(5)
    for seed in range(30):   # one per think / no-think sample, partners of different prompts, any seed
        out = mode_switch_conversations(rows, 0.9, seed=seed)
        assert len(out) == 5 and all(a.split("/")[0] != b.split("/")[0] for a, b in (r["built_from"] for r in out))
    assert mode_switch_conversations(rows, 0.0, seed=0) == []
    assert mode_switch_conversations(both_rows(1), 0.5, seed=0) == []  # one prompt: nothing to switch to
    think_only = [r for r in rows if r["mode"] == "think"]
    assert mode_switch_conversations(think_only, 0.5, seed=0) == []
    unverified = [r | {"verified": False} if r["mode"] == "no_think" else r for r in rows]
    assert mode_switch_conversations(unverified, 0.5, seed=0) == []


# -- the recipe field ----------------------------------------------------------------------------

def test_share_is_lowered_only_when_set_and_needs_mode_both():
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.errors import RecipeError
    from qwen3_recipe.recipe.validate import load_recipe

    tiny = REPO / "recipes/tiny.yaml"

    def synth_job(*sets):
        plan = make_plan(load_recipe(tiny, list(sets)))
        return next(p.job for p in plan.jobs if p.job.name == "synth.fusion_mix")

    base = synth_job()
    assert "multi_turn_share" not in base.config["job"]   # off: the config (and fingerprint) as before
    assert synth_job("synth.jobs.fusion_mix.multi_turn_share=0").fingerprint == base.fingerprint
    on = synth_job("synth.jobs.fusion_mix.multi_turn_share=0.2", "synth.jobs.fusion_mix.soft_switch=true")
    assert on.config["job"]["multi_turn_share"] == 0.2 and on.fingerprint != base.fingerprint
    with pytest.raises(RecipeError, match="need soft_switch: true"):  # the tiny recipe's fusion set has no flags
        load_recipe(tiny, ["synth.jobs.fusion_mix.multi_turn_share=0.2"])
    with pytest.raises(RecipeError, match="need mode: both"):
        load_recipe(tiny, ["synth.jobs.cot_coldstart.multi_turn_share=0.2"])
    with pytest.raises(RecipeError):
        load_recipe(tiny, ["synth.jobs.fusion_mix.multi_turn_share=1"])


# -- SFT rendering -------------------------------------------------------------------------------

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    from qwen3_recipe.tokenizer.qwen3 import save_tokenizer, train_bpe
    from qwen3_recipe.train.sft_data import read_conversations
    texts = [m.get("reasoning_content") or m["content"]
             for c in read_conversations(REPO / "datasets_spec/data/tiny_chat.jsonl") for m in c["messages"]]
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    save_tokenizer(train_bpe(texts, 512), out, 4096)
    return transformers.AutoTokenizer.from_pretrained(str(out))


def loss_runs(hf, ids, mask) -> list[str]:
    out, cur = [], []
    for i, k in zip(ids, mask):
        if k:
            cur.append(int(i))
        elif cur:
            out.append(hf.decode(cur)), cur.clear()
    return out + ([hf.decode(cur)] if cur else [])


def rendered(hf, row):
    from qwen3_recipe.train.sft_data import encode, expand
    return [(mode, hf.decode(ids), loss_runs(hf, ids, mask))
            for msgs, mode, _ in expand(row, "split")
            for ids, mask in [encode(hf, msgs, last_only=True)]]


def test_sft_trains_each_turn_in_its_own_mode(hf):
    rows = both_rows(4)
    t_first, n_first = mode_switch_conversations(rows, 0.5, seed=3)[:2]
    assert turn_modes(t_first) == ["think", "no_think"] and turn_modes(n_first) == ["no_think", "think"]

    def block(row, turn: int, mode: str) -> str:
        a = row["messages"][2 * turn + 1]
        return f"<think>\n{a['reasoning_content'] if mode == 'think' else ''}\n</think>\n\n{a['content']}<|im_end|>"

    # think -> no_think: turn 1 trains with its reasoning; turn 2 trains the empty think block after
    # /no_think, with turn 1 as context without its reasoning (the template drops it before a later query)
    (m1, text1, runs1), (m2, text2, runs2) = rendered(hf, t_first)
    assert (m1, runs1) == ("think", [block(t_first, 0, "think")])
    assert (m2, runs2) == ("no_think", [block(t_first, 1, "no_think")])
    a1 = t_first["messages"][1]
    assert f"<|im_start|>assistant\n{a1['content']}<|im_end|>" in text2 and a1["reasoning_content"] not in text2
    # no_think -> think: turn 1 trains the empty block, turn 2 its reasoning after /think
    (m1, _, runs1), (m2, text2, runs2) = rendered(hf, n_first)
    assert (m1, runs1) == ("no_think", [block(n_first, 0, "no_think")])
    assert (m2, runs2) == ("think", [block(n_first, 1, "think")])
    assert text2.count("<think>") == 1    # only the trained turn has a think block


def test_prepare_sft_counts_switch_rows_per_turn(hf, tmp_path):
    from qwen3_recipe.train.sft import balance_modes
    from qwen3_recipe.train.sft_data import prepare_sft
    rows = both_rows(4)
    switches = mode_switch_conversations(rows, 0.5, seed=3)
    stats = prepare_sft(switches, hf.name_or_path, tmp_path / "sft", seq_len=512, seed=0)
    assert (stats["conversations"], stats["samples"], stats["invalid"]) == (4, 8, 0)
    assert (stats["think"], stats["no_think"], stats["reasoning_stripped"]) == (4, 4, 2)
    # a fusion stage's balance counts a switch row by its last flag
    assert len(balance_modes(rows + switches, 0.5, seed=0)) == len(rows + switches)


def test_dataset_file_keeps_the_lineage_column(tmp_path):
    from qwen3_recipe.catalog.rows import file_rows
    from qwen3_recipe.synth.job import write_dataset
    rows = both_rows(4)
    data = rows + mode_switch_conversations(rows, 0.2, seed=1)
    write_dataset(tmp_path, data)
    back = list(file_rows(tmp_path / "train.parquet"))
    assert back == data and [r["built_from"] is None for r in back] == [True] * 8 + [False] * 2


def test_soft_switch_off_leaves_prompts_unflagged():
    """`soft_switch: false`: both modes' requests carry the prompt as it is (the chat template's
    enable_thinking sets the mode); on, each ends in its mode's flag."""
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    from qwen3_recipe.synth.job import requests_for
    from qwen3_recipe.synth.plan import generation_plan
    from qwen3_recipe.synth.prompts import Prompt
    prompts = [Prompt("p1", "tiny_drills", "What is 2 + 3?", "5")]

    def modes(soft_switch: bool) -> dict:  # the fusion job's compiled generation plan (tiny: mode both)
        plan = make_plan(load_recipe("recipes/tiny.yaml", [f"synth.jobs.fusion_mix.soft_switch={str(soft_switch).lower()}"]))
        return generation_plan(plan["synth.fusion_mix"], plan)["modes"]
    off = requests_for(prompts, modes(False), 0, "t")
    on = requests_for(prompts, modes(True), 0, "t")
    assert [(r["mode"], r["messages"][0]["content"]) for r in off] == [("think", "What is 2 + 3?"), ("no_think", "What is 2 + 3?")]
    assert [r["messages"][0]["content"] for r in on] == ["What is 2 + 3?" + FLAGS["think"], "What is 2 + 3?" + FLAGS["no_think"]]
    assert {r["key"] for r in off}.isdisjoint(r["key"] for r in on)
