"""`seq_len_start`: a stage grows its sequence length within one torchtitan run. The lowering cuts
the steps into doubling lengths, the loader feeds them with the batch in tokens held constant, and
what was fed (not what was declared) is what the stage records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen3_recipe.train.pretrain import seq_len_segments
from tests.test_train_cpu import assets, job, run, write_packed  # noqa: F401 (fixture)


def test_segments_double_from_start_to_seq_len():
    assert seq_len_segments(None, 512, 10) == [{"first_step": 1, "steps": 10, "seq_len": 512}]
    assert seq_len_segments(256, 512, 196) == [{"first_step": 1, "steps": 98, "seq_len": 256},
                                               {"first_step": 99, "steps": 98, "seq_len": 512}]
    segs = seq_len_segments(4096, 32768, 10)
    assert [s["seq_len"] for s in segs] == [4096, 8192, 16384, 32768]
    assert sum(s["steps"] for s in segs) == 10 and segs[-1]["first_step"] + segs[-1]["steps"] == 11
    # fewer steps than lengths: the longest lengths are kept
    assert [s["seq_len"] for s in seq_len_segments(64, 512, 2)] == [256, 512]


def test_scheduled_loader_holds_the_batch_in_tokens(tmp_path):
    pytest.importorskip("torchtitan")
    from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader

    folder = write_packed(tmp_path / "tok", [list(range(1, 200))])
    schedule = [{"first_step": 1, "steps": 2, "seq_len": 4}, {"first_step": 3, "steps": 2, "seq_len": 8}]
    trace = tmp_path / "trace.jsonl"
    cfg = PackedTokensDataLoader.Config(dataset_path=str(folder), seq_len_schedule=schedule,
                                        global_batch_size=4, trace_file=str(trace))
    # 2 rows of 8 per micro-batch, 2 micro-steps per optimizer step (global batch 4 sequences of 8)
    loader = cfg.build(dp_world_size=1, dp_rank=0, tokenizer=None, seq_len=8, local_batch_size=2)
    it = iter(loader)
    shapes = [tuple(next(it)[0]["input"].shape) for _ in range(8)]
    assert shapes == [(4, 4)] * 4 + [(2, 8)] * 4  # steps 1-2 at length 4, steps 3-4 at length 8
    fed = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [(f["step"], f["seq_len"]) for f in fed] == [(1, 4), (1, 4), (2, 4), (2, 4), (3, 8), (3, 8), (4, 8), (4, 8)]
    # the stream is read in order with no gap or overlap: windows of L every L tokens, labels shifted
    first = iter(cfg.build(dp_world_size=1, dp_rank=0, tokenizer=None, seq_len=8, local_batch_size=2))
    (x, y), (x2, _) = next(first), next(first)
    assert x["input"][0].tolist() == [1, 2, 3, 4] and y[0].tolist() == [2, 3, 4, 5]
    assert x2["input"][0].tolist() == [17, 18, 19, 20]
    # resume: the read position and micro-step count survive the checkpointer's state dict
    state = loader.state_dict()
    again = cfg.build(dp_world_size=1, dp_rank=0, tokenizer=None, seq_len=8, local_batch_size=2)
    again.load_state_dict(state)
    resumed = next(iter(again))[0]["input"]
    assert tuple(resumed.shape) == (2, 8) and resumed[0, 0] == 129  # 8 micro-steps of 16 tokens read; micro-step and read position both restored
    # two data-parallel ranks split each micro-step's chunk
    r0 = next(iter(cfg.build(dp_world_size=2, dp_rank=0, tokenizer=None, seq_len=8, local_batch_size=2)))
    r1 = next(iter(cfg.build(dp_world_size=2, dp_rank=1, tokenizer=None, seq_len=8, local_batch_size=2)))
    assert r0[0]["input"][0, 0] == 1 and r1[0]["input"][0, 0] == 17
    # too few tokens for one micro-step: an error, not an endless re-loop
    small = write_packed(tmp_path / "small", [list(range(1, 30))])
    with pytest.raises(ValueError, match="hold no micro-step"):
        PackedTokensDataLoader.Config(dataset_path=str(small), seq_len_schedule=schedule, global_batch_size=4).build(
            dp_world_size=2, dp_rank=0, tokenizer=None, seq_len=8, local_batch_size=2)


@pytest.mark.slow
def test_a_growing_stage_trains_at_each_length(assets):  # noqa: F811
    """The real trainer: 6 steps, 3 at 32 and 3 at 64 tokens, recorded from the loader's trace."""
    from qwen3_recipe.train.stage import with_fed_lengths

    spec = job(assets, "grow", steps=6, interval=3)
    spec["seq_len_schedule"] = seq_len_segments(32, 64, 6)
    run(assets, spec, "grow")
    rows = [json.loads(line) for line in (Path(spec["dump_folder"]) / "metrics.jsonl").read_text().splitlines()]
    fed = with_fed_lengths(rows, spec)
    assert [r["seq_len"] for r in fed] == [32, 32, 32, 64, 64, 64]
    assert {r["tokens"] for r in fed} == {spec["batch_tokens"]}
    losses = [r["loss_metrics/global_avg_loss"] for r in fed]
    assert losses[-1] < losses[0]
