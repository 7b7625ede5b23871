"""Generation engines on the shipped tiny teacher (tests/assets/tiny-teacher, scripts/make_tiny_teacher.py):
real vLLM on CPU in this process (one LLM for the module), transformers, and a real vLLM OpenAI server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("vllm")
pytest.importorskip("transformers")

from qwen3_recipe.synth.sampling import EARLY_STOP, Request, SamplingParams, resolve_mode

REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
# small problems, which the teacher gets right often but not always
ITEMS = [{"question": f"What is {a} {op} {b}?", "answer": str(eval(f"{a} {op.replace('×', '*')} {b}"))}
         for a, op, b in [(7, "+", 5), (3, "×", 4), (9, "-", 2), (6, "+", 8), (8, "×", 7), (15, "-", 6),
                          (4, "+", 9), (23, "+", 5), (7, "×", 6), (12, "-", 7), (5, "+", 5), (9, "×", 3)]]
BOXED = re.compile(r"\\boxed\{(\d+)\}")
LONG = ["What is 487 × 36?", "What is 905 - 378 + 64?", "What is 76 × 58?"]  # long worked solutions


def ask(q: str, flag: str = "") -> list[dict]:
    return [{"role": "user", "content": f"{q} {flag}".strip()}]


def answer(text: str) -> str | None:
    found = BOXED.findall(text.split("</think>")[-1])
    return found[-1] if found else None


@pytest.fixture(scope="module")
def engine():
    from qwen3_recipe.synth.engines import VLLMEngine
    eng = VLLMEngine(str(TEACHER), dtype="float32", max_model_len=1024)
    yield eng
    eng.close()


def check_budget(eng, results, budget: int) -> int:
    """Every sample thinks at most `budget` tokens, cut ones right before the early-stop text, and
    answers after it; returns how many were cut."""
    early, cut = list(eng.markers.early_stop), 0
    for r in results:
        for s in r.samples:
            assert s.thinking_tokens <= budget, (s.thinking_tokens, s.text)
            assert answer(s.text) is not None, s.text  # an answer follows
            if s.budget_cut:
                cut += 1
                assert s.cut_at == s.token_ids.index(eng.markers.think_start) + 1 + budget == s.thinking_tokens + 1
                assert s.token_ids[s.cut_at:s.cut_at + len(early)] == early
                assert EARLY_STOP in s.text and BOXED.search(s.text.split(EARLY_STOP)[1])
            else:
                assert s.cut_at is None and EARLY_STOP not in s.text
    return cut


def test_modes_defaults_and_flags():
    assert SamplingParams().resolved("think") == SamplingParams(temperature=0.6, top_p=0.95, top_k=20, min_p=0.0)
    assert SamplingParams(temperature=0.1).resolved("no_think").top_p == 0.8
    turns = ask("What is 2 + 3?", "/no_think") + [{"role": "assistant", "content": "5"}] + ask("Now add 4 to that.")
    assert resolve_mode(Request("a", messages=turns)) == "no_think"  # the last flag wins
    assert resolve_mode(Request("b", messages=turns + [{"role": "assistant", "content": "9"}] + ask("x", "/think"))) == "think"
    assert resolve_mode(Request("c", messages=ask("x"))) == "think"
    assert resolve_mode(Request("d", messages=ask("x /think"), mode="no_think")) == "no_think"
    with pytest.raises(ValueError):
        Request("e")


def test_forced_after_end_and_analyze():
    from qwen3_recipe.synth.budget import Markers, analyze, forced_after_end
    m = Markers(think_start=1, think_end=2, eos=3, early_stop=(7, 8, 2, 9))
    prompt = [5, 6]
    assert analyze(prompt, [1, 4, 4, 2, 4, 3], m, None) == (2, False, None)
    assert analyze(prompt, [1, 4, 4, 7, 8, 2, 9, 4, 3], m, 2) == (2, True, 3)  # native: cut right at the budget
    assert analyze(prompt, [1, 4, 7, 8, 2, 9, 4, 3], m, 2) == (3, False, None)  # the text, not at the budget
    assert analyze(prompt, [4, 3], m, 2) == (0, False, None)  # no thinking
    assert analyze([5, 1, 4], [4, 7, 8, 2, 9, 3], m, 2, inserted_at=1) == (2, True, 1)  # prompt opened <think>
    assert forced_after_end(prompt, [1, 4, 2, 4, 7, 8, 2, 9, 3], m)
    assert not forced_after_end(prompt, [1, 4, 4, 7, 8, 2, 9, 3], m)


def test_think_and_no_think_structure(engine):
    eos = engine.markers.eos
    reqs = [Request(f"t{i}", messages=ask(it["question"], "/think"), n=2, sampling=SamplingParams(seed=i))
            for i, it in enumerate(ITEMS)]
    reqs += [Request(f"n{i}", messages=ask(it["question"], "/no_think"), n=2, sampling=SamplingParams(seed=i))
             for i, it in enumerate(ITEMS)]
    results = engine.generate(reqs)
    right = {"think": 0, "no_think": 0}
    for r, it in zip(results, ITEMS + ITEMS):
        assert r.mode == ("think" if r.id[0] == "t" else "no_think") and len(r.samples) == 2
        for s in r.samples:
            assert s.finish_reason == "stop" and s.token_ids[-1] == eos and not s.budget_cut and s.cut_at is None
            if r.mode == "think":
                assert s.text.startswith("<think>\n") and "\n</think>\n\nThe answer is \\boxed{" in s.text, s.text
                assert s.thinking_tokens == s.token_ids.index(engine.markers.think_end) - 1 > 0
            else:
                assert engine.tokenizer.decode(r.prompt_token_ids).endswith("<think>\n\n</think>\n\n")
                assert s.text.startswith("The answer is \\boxed{") and s.thinking_tokens == 0, s.text
            right[r.mode] += answer(s.text) == it["answer"]
    total = 2 * len(ITEMS)
    print(f"correct: think {right['think']}/{total}, no_think {right['no_think']}/{total}")
    assert 0 < right["think"] and 0 < right["no_think"]
    assert right["think"] + right["no_think"] < 2 * total  # a verifier has something to reject


def test_soft_switch_in_thinking_template(engine):
    """enable_thinking on (mode forced to think) but /no_think in the last user turn: the model itself
    writes an empty thinking block (Qwen3's learned soft switch)."""
    turns = ask(ITEMS[0]["question"], "/think") + [{"role": "assistant", "content": "The answer is \\boxed{12}."}]
    reqs = [Request(f"w{i}", messages=turns + ask(it["question"], "/no_think"), mode="think", sampling=SamplingParams(seed=i))
            for i, it in enumerate(ITEMS[1:7])]
    for r in engine.generate(reqs):
        assert r.samples[0].text.startswith("<think>\n\n</think>\n\nThe answer is"), r.samples[0].text
        assert r.samples[0].thinking_tokens == len(engine.tokenizer.encode("\n\n"))  # between the tags


def test_native_thinking_budget(engine):
    assert engine.budget == "native"
    reqs = [Request(f"b{i}", messages=ask(q, "/think"), n=3, thinking_budget=12, sampling=SamplingParams(seed=i))
            for i, q in enumerate(LONG + ["What is 4 + 3?"])]
    repairs = engine.native_repairs
    results = engine.generate(reqs)
    assert check_budget(engine, results, 12) >= 9  # the long ones are all cut
    short = results[-1].samples  # thinking ends by itself, under the budget: not cut, nothing inserted
    assert not any(s.budget_cut for s in short) and all(s.thinking_tokens < 12 for s in short)
    # vLLM 0.32 forces the early-stop text into these answers (budget.forced_after_end): redone two-phase
    assert engine.native_repairs - repairs in (0, 3)


def test_two_phase_budget_matches_native(engine):
    reqs = [Request(f"g{i}", messages=ask(q, "/think"), thinking_budget=b, sampling=SamplingParams(temperature=0))
            for i, q in enumerate(LONG) for b in (0, 5, 16)]
    two = engine.generate(reqs, budget="two_phase")
    for b in (0, 5, 16):
        part = [r for r, q in zip(two, reqs) if q.thinking_budget == b]
        assert check_budget(engine, part, b) == len(part)
    native = engine.generate(reqs, budget="native")
    assert [r.samples[0].token_ids for r in native] == [r.samples[0].token_ids for r in two]


def test_same_seed_same_output(engine):
    reqs = [Request("s", messages=ask(LONG[0], "/think"), n=3, sampling=SamplingParams(seed=7), logprobs=2)]
    a, b = engine.generate(reqs)[0], engine.generate(reqs)[0]
    assert [s.token_ids for s in a.samples] == [s.token_ids for s in b.samples]
    assert len({tuple(s.token_ids) for s in a.samples}) > 1  # sample i uses seed + i
    c = engine.generate([Request("s", messages=ask(LONG[0], "/think"), n=3, sampling=SamplingParams(seed=8))])[0]
    assert [s.token_ids for s in c.samples] != [s.token_ids for s in a.samples]
    text = engine.tokenizer.apply_chat_template(ask(LONG[0], "/think"), tokenize=False, add_generation_prompt=True)
    raw = engine.generate([Request("p", prompt=text, n=3, sampling=SamplingParams(seed=7))])[0]  # rendered already
    assert raw.mode == "think" and [s.token_ids for s in raw.samples] == [s.token_ids for s in a.samples]
    for s in a.samples:  # top-2 log-probabilities (plus the sampled token) for every token
        assert len(s.logprobs) == len(s.token_ids)
        assert all(t in d and 2 <= len(d) <= 3 and max(d.values()) <= 0 for t, d in zip(s.token_ids, s.logprobs))


def test_transformers_engine(engine):
    from qwen3_recipe.synth.engines import TransformersEngine
    hf = TransformersEngine(str(TEACHER))
    reqs = [Request("h0", messages=ask(ITEMS[4]["question"], "/think"), sampling=SamplingParams(temperature=0, max_tokens=300)),
            Request("h1", messages=ask(LONG[1], "/think"), thinking_budget=6, sampling=SamplingParams(temperature=0)),
            Request("h2", messages=ask("What is 12 + 9?", "/no_think"), n=2, sampling=SamplingParams(seed=3), logprobs=1)]
    got = hf.generate(reqs)
    assert got[0].samples[0].text.startswith("<think>\n") and answer(got[0].samples[0].text)
    assert check_budget(hf, got[1:2], 6) == 1
    assert all(s.text.startswith("The answer is") and len(s.logprobs) == len(s.token_ids) for s in got[2].samples)
    with pytest.raises(ValueError):
        hf.generate(reqs[:1], budget="native")
    same = engine.generate(reqs[:2], budget="two_phase")  # greedy: the same tokens as vLLM
    assert [r.samples[0].token_ids for r in same] == [r.samples[0].token_ids for r in got[:2]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_openai_server_engine(engine, tmp_path):
    from qwen3_recipe.synth.engines import OpenAIServerEngine
    port = _free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(TEACHER),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
           "--enforce-eager", "--kv-cache-memory-bytes", str(256 << 20), "--max-num-batched-tokens", "16384",
           "--distributed-executor-backend", "uni", "--enable-prefix-caching", "--reasoning-parser", "qwen3",
           "--reasoning-config", json.dumps({"reasoning_end_str": EARLY_STOP})]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.time() + 300
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "server did not come up"
            time.sleep(1)
        remote = OpenAIServerEngine(url, tokenizer=str(TEACHER))
        reqs = [Request("o0", messages=ask(LONG[0], "/think"), thinking_budget=10, n=2, sampling=SamplingParams(seed=5)),
                Request("o1", messages=ask(ITEMS[0]["question"], "/no_think"), sampling=SamplingParams(seed=5), logprobs=2),
                Request("o2", messages=ask(LONG[1], "/think"), thinking_budget=7, sampling=SamplingParams(temperature=0))]
        for method in ("native", "two_phase"):
            got = remote.generate(reqs, budget=method)
            assert check_budget(remote, got[:1], 10) == 2 and check_budget(remote, got[2:], 7) == 1
            assert got[1].samples[0].text.startswith("The answer is")
            assert len(got[1].samples[0].logprobs) == len(got[1].samples[0].token_ids)
            assert got[2].samples[0].token_ids == engine.generate(reqs[2:])[0].samples[0].token_ids
        again = remote.generate(reqs[:1])
        assert [s.token_ids for s in again[0].samples] == [s.token_ids for s in remote.generate(reqs[:1])[0].samples]
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
