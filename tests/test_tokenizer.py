"""The tokenizer: a real byte-level BPE trained with `tokenizers`, loaded by `transformers`, rendering
Qwen3's chat template exactly; the tokenizer job on generated JSONL.gz documents."""

from __future__ import annotations

import gzip
import json
import random
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from transformers import AutoTokenizer  # noqa: E402

from qwen3_recipe.tokenizer.job import TMP_PREFIX, document_files, documents, run_tokenizer  # noqa: E402
from qwen3_recipe.tokenizer.qwen3 import (  # noqa: E402
    SPECIAL_TOKENS,
    chat_template,
    load_pretrained,
    save_tokenizer,
    train_bpe,
)

VOCAB = 512
MAX_LEN = 40_960

WORDS = ("the a old young quiet careful farmer teacher river bridge garden market station letter "
         "noticed described carried repaired painted measured near behind across under and then "
         "of with from into every morning evening city village school library window train road").split()
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    "if x > 0:\n    y = x // 2\nelse:\n    y = -x\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n",
    "import json\nwith open('data.json') as f:\n    data = json.load(f)\n",
]


def corpus(seed: int = 0, n: int = 400) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        texts.append(" ".join(words).capitalize() + ".")
        if i % 4 == 0:
            texts.append(f"In {1900 + rng.randint(0, 125)} the price was {rng.randint(0, 99999)} dollars, "
                         f"or {rng.random():.3f} of 1,000,000.")
        if i % 8 == 0:
            texts.append(rng.choice(CODE))
    return texts


@pytest.fixture(scope="module")
def trained():
    return train_bpe(corpus(), VOCAB)


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    save_tokenizer(trained, out, MAX_LEN)
    return out


@pytest.fixture(scope="module")
def hf(saved):
    return AutoTokenizer.from_pretrained(str(saved))


# -- training and saving -----------------------------------------------------------------------

def test_special_tokens_are_qwen3s_26_in_official_order():
    assert [t.content for t in SPECIAL_TOKENS] == [
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
        "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
        "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
        "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
        "<tool_response>", "</tool_response>", "<think>", "</think>"]
    # Qwen3's tokenizer_config.json: only 151643..151656 are `special: true`
    assert [t.special for t in SPECIAL_TOKENS] == [True] * 14 + [False] * 12


def test_vocab_is_full_and_added_tokens_follow_the_learned_vocab(trained):
    assert trained.get_vocab_size() == VOCAB
    n = len(SPECIAL_TOKENS)
    assert [trained.token_to_id(t.content) for t in SPECIAL_TOKENS] == list(range(VOCAB - n, VOCAB))
    learned = trained.get_vocab(with_added_tokens=False)
    assert len(learned) == VOCAB - n and max(learned.values()) == VOCAB - n - 1
    assert all(trained.token_to_id(chr(c)) is not None for c in range(0x21, 0x7F))  # byte alphabet


def test_training_is_deterministic(trained):
    assert train_bpe(corpus(), VOCAB).to_str() == trained.to_str()


def test_too_small_vocab_is_refused():
    with pytest.raises(ValueError, match="at least 282"):
        train_bpe(corpus(n=10), 281)


def test_saved_files_have_qwen3s_config(saved, trained):
    cfg = json.loads((saved / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "Qwen2Tokenizer"
    assert (cfg["eos_token"], cfg["pad_token"], cfg["bos_token"]) == ("<|im_end|>", "<|endoftext|>", None)
    assert cfg["model_max_length"] == MAX_LEN and cfg["errors"] == "replace"
    assert cfg["split_special_tokens"] is False and cfg["clean_up_tokenization_spaces"] is False
    assert cfg["chat_template"] == chat_template()
    first = VOCAB - len(SPECIAL_TOKENS)
    assert cfg["added_tokens_decoder"] == {
        str(first + i): {"content": t.content, "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": t.special}
        for i, t in enumerate(SPECIAL_TOKENS)}
    tok_json = json.loads((saved / "tokenizer.json").read_text())
    assert tok_json["model"]["type"] == "BPE"
    assert [s["type"] for s in tok_json["pre_tokenizer"]["pretokenizers"]] == ["Split", "ByteLevel"]


def test_loads_with_autotokenizer(hf):
    assert type(hf).__name__ == "Qwen2Tokenizer"
    assert len(hf) == VOCAB
    assert (hf.eos_token, hf.pad_token, hf.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert hf.eos_token_id == VOCAB - 24 and hf.pad_token_id == VOCAB - 26
    assert hf.model_max_length == MAX_LEN
    first = VOCAB - len(SPECIAL_TOKENS)
    assert hf.convert_tokens_to_ids([t.content for t in SPECIAL_TOKENS]) == list(range(first, VOCAB))


@pytest.mark.parametrize("text", [
    "The old farmer noticed a bridge.",
    "x = 12345 * 678\nprint(x)\n\n\tindented\r\nwindows line",
    "Ünïcödé: café, naïve, Straße, Ελληνικά, русский, 中文字符, 日本語のテキスト, 한국어",
    "emoji 🎉🧪👩‍💻 and symbols ∑∫√≤≥ ← → ™ © ½",
    "   leading and trailing spaces   ",
    "zero width \u200b joiner \u200d and rtl \u202e text",
])
def test_encode_decode_round_trip(hf, trained, text):
    ids = hf(text)["input_ids"]
    assert hf.decode(ids) == text
    assert trained.decode(trained.encode(text).ids, skip_special_tokens=False) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_nfc_text_round_trips(hf, text):
    assume(unicodedata.normalize("NFC", text) == text and "<" not in text)  # "<": no added-token text
    assert hf.decode(hf(text)["input_ids"]) == text


def test_text_is_nfc_normalised_like_qwen(hf):
    assert hf.decode(hf("cafe\u0301")["input_ids"]) == "caf\u00e9"


def test_added_tokens_encode_whole_and_only_special_ones_are_skipped(hf):
    text = "<|im_start|>assistant\n<think>\nhmm\n</think>\n\nok<|im_end|>"
    ids = hf(text)["input_ids"]
    for t in ("<|im_start|>", "<think>", "</think>", "<|im_end|>"):
        assert hf.convert_tokens_to_ids(t) in ids
    assert hf.decode(ids) == text
    assert hf.decode(ids, skip_special_tokens=True) == "assistant\n<think>\nhmm\n</think>\n\nok"


# -- the chat template -------------------------------------------------------------------------

Q = {"role": "user", "content": "What is 2+2?"}
A = {"role": "assistant", "content": "4"}
A_REASONED = {"role": "assistant", "content": "4", "reasoning_content": "Two plus two is four."}
A_INLINE = {"role": "assistant", "content": "<think>\nTwo plus two is four.\n</think>\n\n4"}
SYS = {"role": "system", "content": "You are a helpful assistant."}
Q2 = {"role": "user", "content": "And 3+3?"}
A2_REASONED = {"role": "assistant", "content": "6", "reasoning_content": "Three plus three is six."}

P_Q = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
P_SYS = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
P_GEN = "<|im_start|>assistant\n"
P_NOTHINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"

CASES = {
    # single turn, generation prompt: enable_thinking absent / True / False
    "gen": ([Q], {"add_generation_prompt": True}, P_Q + P_GEN),
    "gen_thinking": ([Q], {"add_generation_prompt": True, "enable_thinking": True}, P_Q + P_GEN),
    "gen_no_thinking": ([Q], {"add_generation_prompt": True, "enable_thinking": False}, P_Q + P_NOTHINK),
    "no_gen": ([Q], {}, P_Q),
    "no_gen_no_thinking": ([Q], {"enable_thinking": False}, P_Q),
    "system_gen": ([SYS, Q], {"add_generation_prompt": True}, P_SYS + P_Q + P_GEN),
    # a final assistant turn always carries a think block (empty without reasoning)
    "answer": ([Q, A], {}, P_Q + "<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n"),
    "answer_reasoning": ([Q, A_REASONED], {},
                         P_Q + "<|im_start|>assistant\n<think>\nTwo plus two is four.\n</think>\n\n4<|im_end|>\n"),
    "answer_reasoning_no_thinking": ([Q, A_REASONED], {"enable_thinking": False},
                                     P_Q + "<|im_start|>assistant\n<think>\nTwo plus two is four.\n</think>\n\n"
                                     "4<|im_end|>\n"),
    "answer_inline_think": ([Q, A_INLINE], {},
                            P_Q + "<|im_start|>assistant\n<think>\nTwo plus two is four.\n</think>\n\n4<|im_end|>\n"),
    # multi-turn: reasoning of turns before the last user query is dropped
    "multi": ([SYS, Q, A_REASONED, Q2, A2_REASONED], {},
              P_SYS + P_Q + "<|im_start|>assistant\n4<|im_end|>\n"
              "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
              "<|im_start|>assistant\n<think>\nThree plus three is six.\n</think>\n\n6<|im_end|>\n"),
    "multi_inline_dropped": ([Q, A_INLINE, Q2], {"add_generation_prompt": True},
                             P_Q + "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"
                             + P_GEN),
    "multi_plain_gen_no_thinking": ([Q, A, Q2], {"add_generation_prompt": True, "enable_thinking": False},
                                    P_Q + "<|im_start|>assistant\n4<|im_end|>\n"
                                    "<|im_start|>user\nAnd 3+3?<|im_end|>\n" + P_NOTHINK),
    "multi_middle_plain": ([Q, A, Q2, A2_REASONED], {"add_generation_prompt": False},
                           P_Q + "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"
                           "<|im_start|>assistant\n<think>\nThree plus three is six.\n</think>\n\n6<|im_end|>\n"),
}

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOL_CONVERSATION = [
    SYS,
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "reasoning_content": "I should call the tool.",
     "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "Sunny, 22C"},
    {"role": "assistant", "content": "It is sunny and 22C in Paris."},
]
TOOL_RENDERED = (
    "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name": "get_weather", "description": "Get the weather", '
    '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
    "</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
    # after the last user query: the tool-calling step keeps its reasoning (multi-step tool use)
    "<|im_start|>assistant\n<think>\nI should call the tool.\n</think>\n\n"
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
    "<|im_start|>user\n<tool_response>\nSunny, 22C\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\nIt is sunny and 22C in Paris.<|im_end|>\n"
)


@pytest.mark.parametrize("name", list(CASES))
def test_chat_template_renders_exactly(hf, name):
    messages, kwargs, expected = CASES[name]
    assert hf.apply_chat_template(messages, tokenize=False, **kwargs) == expected


def test_chat_template_renders_tools_and_multi_step_tool_calls(hf):
    rendered = hf.apply_chat_template(TOOL_CONVERSATION, tools=[WEATHER_TOOL], tokenize=False)
    assert rendered == TOOL_RENDERED


def test_chat_template_tokenizes_control_tokens_whole(hf):
    ids = hf.apply_chat_template([Q], add_generation_prompt=True, enable_thinking=False, tokenize=True,
                                 return_dict=True)["input_ids"]
    im_start, im_end = hf.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    think, end_think = hf.convert_tokens_to_ids(["<think>", "</think>"])
    assert ids[0] == im_start and ids.count(im_start) == 2 and ids.count(im_end) == 1
    assert think in ids and end_think in ids
    assert hf.decode(ids) == P_Q + P_NOTHINK


# A second, independent copy of Qwen3's release chat template (the `chat_template` string of
# Qwen/Qwen3-* tokenizer_config.json, April 2025), as vendored in wangling03/BioReason
# bioreason/models/dl/chat_template_dl.py (`qwen3_chat_template`, commit 9153dfbd); the package's
# chat_template.jinja was taken from llama.cpp's models/templates/Qwen-Qwen3-0.6B.jinja.
OFFICIAL_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- messages[0].content + '\\n\\n' }}\n"
    "    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n"
    "    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n"
    "        {%- set ns.last_query_index = index %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {%- set content = message.content %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n"
    "        {%- else %}\n"
    "            {%- if '</think>' in message.content %}\n"
    "                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}\n"
    "                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n"
    "        {%- endif %}\n"
    "        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "            {%- endif %}\n"
    "        {%- else %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "        {%- endif %}\n"
    "        {%- if message.tool_calls %}\n"
    "            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if (loop.first and content) or (not loop.first) %}\n"
    "                    {{- '\\n' }}\n"
    "                {%- endif %}\n"
    "                {%- if tool_call.function %}\n"
    "                    {%- set tool_call = tool_call.function %}\n"
    "                {%- endif %}\n"
    "                {{- '<tool_call>\\n{\"name\": \"' }}\n"
    "                {{- tool_call.name }}\n"
    "                {{- '\", \"arguments\": ' }}\n"
    "                {%- if tool_call.arguments is string %}\n"
    "                    {{- tool_call.arguments }}\n"
    "                {%- else %}\n"
    "                    {{- tool_call.arguments | tojson }}\n"
    "                {%- endif %}\n"
    "                {{- '}\\n</tool_call>' }}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}"
)


def test_template_file_is_the_official_qwen3_template(hf, saved):
    assert chat_template() == OFFICIAL_TEMPLATE
    assert not chat_template().endswith("\n")
    assert hf.chat_template == OFFICIAL_TEMPLATE
    assert json.loads((saved / "tokenizer_config.json").read_text())["chat_template"] == OFFICIAL_TEMPLATE


# -- pretrained tokenizers ---------------------------------------------------------------------

def test_load_pretrained_copies_a_local_directory(saved, hf, tmp_path):
    out = tmp_path / "copy"
    load_pretrained(str(saved), out)
    assert {p.name for p in out.iterdir()} == {"tokenizer.json", "tokenizer_config.json"}
    again = AutoTokenizer.from_pretrained(str(out))
    assert again.get_vocab() == hf.get_vocab()
    messages, kwargs, expected = CASES["multi"]
    assert again.apply_chat_template(messages, tokenize=False, **kwargs) == expected


def test_load_pretrained_names_the_missing_file(saved, tmp_path):
    src = tmp_path / "partial"
    src.mkdir()
    (src / "tokenizer.json").write_bytes((saved / "tokenizer.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="tokenizer_config.json"):
        load_pretrained(str(src), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_pretrained(str(tmp_path / "absent"), tmp_path / "out")


# -- the job -----------------------------------------------------------------------------------

def write_output(run: Path, job: str, docs: list[tuple[str, str]], files: int = 2) -> None:
    folder = run / "jobs" / job / "output"
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        with gzip.open(folder / f"{k:05d}.jsonl.gz", "wt", encoding="utf-8") as fh:
            for i, (source, text) in enumerate(docs[k::files]):
                fh.write(json.dumps({"text": text, "id": f"{source}/{k}-{i}",
                                     "metadata": {"source": source, "job": job}}) + "\n")


def fake_plan(run: Path, tokenizer: dict, deps: list[str]):
    """A tokenizer job compiled as `compile` does (the real lowerer writes its lowered.json)."""
    from qwen3_recipe.compiler.lowerers import LOWERED_FILE, lowered_text
    job = SimpleNamespace(name="tokenizer", kind="tokenizer", deps=deps, dir="jobs/tokenizer", fingerprint="f0",
                          config={"tokenizer": tokenizer, "chat_template": "qwen3", "model_max_length": 2048})
    p, plan = SimpleNamespace(job=job), SimpleNamespace(run_dir=run)
    (run / job.dir).mkdir(parents=True, exist_ok=True)
    (run / job.dir / LOWERED_FILE).write_text(lowered_text(p, plan))
    return p, plan


def test_documents_filter_by_source_and_stop_at_max(tmp_path):
    docs = [("web", f"web doc {i}") for i in range(10)] + [("code", f"code doc {i}") for i in range(10)]
    write_output(tmp_path, "data.dedup", docs)
    p, plan = fake_plan(tmp_path, {"type": "train", "vocab_size": 400}, ["data.dedup"])
    files = document_files(plan, ["data.dedup"])
    assert len(list(documents(files))) == 20
    assert sorted(documents(files, ["code"])) == sorted(t for s, t in docs if s == "code")
    assert len(list(documents(files, ["web"], max_documents=3))) == 3
    assert all(t.startswith("web") for t in documents(files, ["web"], max_documents=3))
    with pytest.raises(FileNotFoundError, match="data.other"):
        document_files(plan, ["data.other"])


def test_tokenizer_job_trains_from_data_jobs(tmp_path):
    texts = corpus(seed=1, n=200)
    write_output(tmp_path, "data.web", [("web", t) for t in texts])
    write_output(tmp_path, "data.code", [("code", t) for t in CODE * 20])
    p, plan = fake_plan(tmp_path, {"type": "train", "vocab_size": 400, "sources": ["web"], "max_documents": None},
                        ["data.web", "data.code"])
    stale = tmp_path / "jobs" / "tokenizer" / f"{TMP_PREFIX}dead"
    stale.mkdir(parents=True)
    run_tokenizer(p, plan)
    out = tmp_path / "jobs" / "tokenizer" / "tokenizer"
    assert sorted(f.name for f in out.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    assert sorted(f.name for f in out.parent.iterdir()) == ["lowered.json", "tokenizer"]  # no half-built leftovers
    tok = AutoTokenizer.from_pretrained(str(out))
    assert len(tok) <= 400 and tok.convert_tokens_to_ids("</think>") == len(tok) - 1
    assert tok.model_max_length == 2048
    # the web-only tokenizer equals one trained directly on the same documents in the same order
    files = document_files(plan, ["data.web", "data.code"])
    direct = train_bpe(documents(files, ["web"]), 400)
    assert json.loads((out / "tokenizer.json").read_text())["model"] == json.loads(direct.to_str())["model"]
    # rerun replaces the tokenizer whole
    run_tokenizer(p, plan)
    assert sorted(f.name for f in out.parent.iterdir()) == ["lowered.json", "tokenizer"]


def test_tokenizer_job_without_documents_fails_and_leaves_nothing(tmp_path):
    write_output(tmp_path, "data.web", [("web", "some text")])
    p, plan = fake_plan(tmp_path, {"type": "train", "vocab_size": 400, "sources": ["nope"], "max_documents": None},
                        ["data.web"])
    with pytest.raises(ValueError, match="no documents"):
        run_tokenizer(p, plan)
    assert [f.name for f in (tmp_path / "jobs" / "tokenizer").iterdir()] == ["lowered.json"]


def test_tokenizer_job_copies_a_pretrained_directory(saved, tmp_path):
    p, plan = fake_plan(tmp_path, {"type": "pretrained", "path": str(saved)}, [])
    run_tokenizer(p, plan)
    out = tmp_path / "jobs" / "tokenizer" / "tokenizer"
    assert (out / "tokenizer.json").read_bytes() == (saved / "tokenizer.json").read_bytes()
    assert AutoTokenizer.from_pretrained(str(out)).chat_template == OFFICIAL_TEMPLATE
