"""A synth job as a pretraining source (issue 17.3): its kept samples, rendered as text or through
Qwen3's chat template, become documents of a `data.<source>` job (read accounting, filters,
decontamination, dedup) and are mixed into a stage like any source; the DAG runs `synth.NAME`
before them, and a synth job taught by a stage trained on its own output is a located cycle."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from conftest import REPO, query, run_cli, write
from qwen3_recipe.data.synth_source import render_chat, render_text

TINY = REPO / "recipes" / "tiny.yaml"
CONVERSATION = [{"role": "user", "content": "What is 4 plus 7?", "reasoning_content": ""},
                {"role": "assistant", "content": "The answer is \\boxed{11}.", "reasoning_content": "4 + 7 = 11."}]


def test_text_rendering_is_question_reasoning_answer_without_template_tokens():
    text = render_text(CONVERSATION)
    assert text == "What is 4 plus 7?\n\n4 + 7 = 11.\n\nThe answer is \\boxed{11}."
    assert "<think>" not in text and "<|im_start|>" not in text


def test_chat_rendering_is_qwen3s_template_with_the_think_block():
    chat = render_chat(CONVERSATION)
    assert chat.startswith("<|im_start|>user\nWhat is 4 plus 7?<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>\n4 + 7 = 11.\n</think>\n\nThe answer is \\boxed{11}.<|im_end|>" in chat
    # the same string transformers renders with the shipped template
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(REPO / "tests" / "assets" / "tiny-teacher")
    assert chat == tok.apply_chat_template(CONVERSATION, tokenize=False)


@pytest.mark.parametrize("source, line, message", [
    ("{synth: cot_coldstrat}", 5, "data.sources.qa.synth: unknown synth job 'cot_coldstrat' (did you mean"),
    ("{synth: cot_coldstart, dataset: tiny_web}", 5, "give one of `dataset`"),
    ("{dataset: tiny_web, format: chat}", 5, "`format` renders a synth job's samples: it needs `synth`"),
    ("{synth: cot_coldstart, format: html}", 5, "data.sources.qa.format"),
])
def test_bad_synth_sources_are_located(tmp_path, source, line, message):
    recipe = write(tmp_path / "r.yaml", f"""
        extends: {TINY}
        name: r
        data:
          sources:
            qa: {source}   # a new source: tiny's `cot` would merge its own keys into these
    """)
    proc = run_cli("validate", str(recipe))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert re.search(rf"r\.yaml:{line}:\d+ .*{re.escape(message)}", proc.stderr), proc.stderr


def test_a_synth_job_taught_by_a_stage_it_feeds_is_a_located_cycle(tmp_path):
    recipe = write(tmp_path / "r.yaml", f"""
        extends: {TINY}
        name: r
        data:
          sources:
            cot: {{synth: cot_coldstart}}
        synth:
          jobs:
            cot_coldstart:
              teacher: {{stage: s3_long_context, path: null}}
    """)
    proc = run_cli("plan", str(recipe), "-o", str(tmp_path / "run"))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert re.search(r"r\.yaml:9:\d+ synth\.jobs\.cot_coldstart\.teacher: dependency cycle: .*synth\.cot_coldstart "
                     r"-> pretrain\.s3_long_context", err), err
    assert "data.cot" in err and "teach it with a model" in err


def docs(folder) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(f, "rt")]


@pytest.mark.slow
def test_a_synth_jobs_samples_feed_a_pretraining_mixture(tmp_path):
    """Two sources from one synth job (text and chat), mixed into s2_reasoning: the DAG runs the
    synth job first, every kept sample is a document with its fate in `decisions`, and the mixture
    draws them under their own keys (SQL over provenance)."""
    import pyarrow.parquet as pq
    run = tmp_path / "run"
    sets = ["data.sources.cot={synth: cot_coldstart}", "data.sources.cot_chat={synth: cot_coldstart, format: chat}",
            "data.mixtures.reasoning.weights={web: 0.1, code: 0.1, math: 0.7, cot: 0.05, cot_chat: 0.05}",
            "pretrain.stages.s2_reasoning.tokens=40K", "synth.jobs.cot_coldstart.limit=40"]
    proc = run_cli("run", str(TINY), "-o", str(run), *[a for s in sets for a in ("--set", s)],
                   "--only", "mix.s2_reasoning", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    order = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("done ")]
    assert order.index("synth.cot_coldstart") < order.index("data.cot") < order.index("mix.s2_reasoning")

    rows = pq.read_table(run / "jobs" / "synth.cot_coldstart" / "dataset" / "train.parquet").to_pylist()
    assert len(rows) >= 10
    for source, render in (("cot", render_text), ("cot_chat", render_chat)):
        read = dict(query(run, f"select doc_id, text_hash from documents where source = '{source}'"))
        assert sorted(read) == sorted(f"{source}/{r['id']}" for r in rows)  # every kept sample, once
        written = {d["id"]: d for d in docs(run / "jobs" / f"data.{source}" / "output")}
        kept = {d for (d,) in query(run, f"select doc_id from decisions where source = '{source}' "
                                         "and step = 'decontamination' and decision = 'kept'")}
        assert kept and set(written) == kept
        for r in rows:
            doc = written.get(f"{source}/{r['id']}")
            if doc is not None:
                assert doc["text"] == render(r["messages"])
                assert doc["metadata"]["synth_job"] == "synth.cot_coldstart" and doc["metadata"]["mode"] == "think"
        drawn = query(run, f"select count(distinct doc_id), sum(tokens) from mixture where stage = 's2_reasoning' "
                           f"and source = '{source}' and weight_key = '{source}'")[0]
        assert drawn[0] > 0 and drawn[1] > 0
        (share,) = query(run, "select realized_share from mixture_targets where stage = 's2_reasoning' "
                              f"and source = '{source}'")[0]
        assert share == pytest.approx(0.05, abs=0.01)
    chat = next(iter(docs(run / "jobs" / "data.cot_chat" / "output")))["text"]
    assert "<|im_start|>assistant\n<think>\n" in chat
    # plan now knows the synth sources' supply: the characters of their turns (unknown before the run)
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    chars = sum(len((m.get("content") or "") + (m.get("reasoning_content") or "")) for r in rows for m in r["messages"])
    before = make_plan(load_recipe(TINY, sets), tmp_path / "elsewhere")["pretrain.s2_reasoning"].shortfalls
    assert {(s.source, s.have) for s in before} == {("cot", None), ("cot_chat", None)}
    tight = sets + ["data.mixtures.reasoning.max_repetition=1", "pretrain.stages.s2_reasoning.tokens=2M"]
    after = make_plan(load_recipe(TINY, tight), run)["pretrain.s2_reasoning"].shortfalls
    have = {s.source: s.have for s in after if s.source.startswith("cot")}
    assert have == {"cot": chars // 4, "cot_chat": chars // 4}
