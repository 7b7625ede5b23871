"""The ifeval verifier with the real if-verifiable checkers, NLTK Punkt model and langdetect,
on items shaped like google/IFEval rows as `datasets` loads them (all 24 kwargs keys, unused
ones None). Row 1000 is verbatim from the dataset card; the others are written for the test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qwen3_recipe.evals.metrics import aggregate
from qwen3_recipe.verify.ifeval import IFEvalVerifier, ensure_punkt_tab
from qwen3_recipe.verify.verifiers import build_verifier

KWARG_KEYS = (
    "num_highlights relation num_words num_placeholders prompt_to_repeat num_bullets section_spliter "
    "num_sections capital_relation capital_frequency keywords num_paragraphs language let_relation letter "
    "let_frequency end_phrase forbidden_words keyword frequency num_sentences postscript_marker first_word "
    "nth_paragraph"
).split()
assert len(KWARG_KEYS) == 24


def kw(**used) -> dict:
    """One kwargs dict as HF gives it: every key present, the unused ones None."""
    assert set(used) <= set(KWARG_KEYS)
    return {k: used.get(k) for k in KWARG_KEYS}


def row(key: int, prompt: str, ids: list[str], kwargs: list[dict]) -> dict:
    return {"key": key, "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs}


ROW_1000 = row(
    1000,
    'Write a 300+ word summary of the wikipedia page "https://en.wikipedia.org/wiki/Raymond_III,_Count_of_Tripoli". '
    "Do not use any commas and highlight at least 3 sections that has titles in markdown format, for example "
    "*highlighted section part 1*, *highlighted section part 2*, *highlighted section part 3*.",
    ["punctuation:no_comma", "detectable_format:number_highlighted_sections", "length_constraints:number_words"],
    [kw(), kw(num_highlights=3), kw(relation="at least", num_words=300)],
)
LOWER_END = row(
    90001, "Describe autumn in all lowercase letters and finish with the exact phrase: any other questions?",
    ["change_case:english_lowercase", "startend:end_checker"],
    [kw(), kw(end_phrase="any other questions?")],
)
PS_KEYWORDS = row(
    90002, "Write a note about a picnic that mentions a banana and a river, with a postscript starting with P.S.",
    ["detectable_content:postscript", "keywords:existence"],
    [kw(postscript_marker="P.S."), kw(keywords=["banana", "river"])],
)
SENTENCES = row(
    90003, "Say who met whom and when in fewer than 4 sentences.",
    ["length_constraints:number_sentences"], [kw(relation="less than", num_sentences=4)],
)
QUOTED = row(90004, "Wrap your entire response with double quotation marks.", ["startend:quotation"], [kw()])

SECTION = "*{}* Raymond III ruled Tripoli and later Galilee through marriage and held great sway over the realm. "
RIGHT_1000 = "".join(SECTION.format(t) for t in ("Early life", "Regency", "Hattin")) * 6  # 6 x 3 x 17 = 306 words
LOWER_TEXT = ("autumn is the season when the leaves turn gold and red, the air grows crisp and cool, "
              "and people walk through the park to watch the trees change.")
RIGHT = {
    1000: RIGHT_1000,
    90001: f"{LOWER_TEXT} any other questions?",
    90002: "We sat by the river and shared a banana under the old oak tree.\n\nP.S. Bring a blanket next time.",
    # Punkt's English abbreviations (dr, mr, p.m, jan) keep this at 3 sentences; a split at
    # every period would count 8.
    90003: "Dr. Smith met Mr. Jones at 5 p.m. on Jan. 3 in the lobby. They talked for an hour. Then they left.",
    90004: '"Here is my whole answer, wrapped as asked."',
}
WRONG = {  # (response, strict) : one instruction broken, the others kept
    1000: (RIGHT_1000.replace("Tripoli and", "Tripoli, and", 1), [False, True, True]),
    90001: (f"Autumn Is Lovely. {LOWER_TEXT} any other questions?", [False, True]),
    90002: ("We sat by the river and shared a banana under the old oak tree.", [False, True]),
    90003: ("Dr. Smith met Mr. Jones at 5 p.m. on Jan. 3 in the lobby. They talked for an hour. "
            "Then they left. It rained.", [False]),
    90004: ("Here is my whole answer, not wrapped.", [False]),
}
ROWS = {r["key"]: r for r in (ROW_1000, LOWER_END, PS_KEYWORDS, SENTENCES, QUOTED)}


@pytest.fixture(scope="module")
def v() -> IFEvalVerifier:
    return IFEvalVerifier()


def test_registered_and_buildable():
    assert isinstance(build_verifier({"type": "ifeval"}), IFEvalVerifier)


@pytest.mark.parametrize("key", sorted(ROWS))
def test_right_answer(v, key):
    n = len(ROWS[key]["instruction_id_list"])
    for response in (RIGHT[key], f"<think>\nLet me plan this.\n</think>\n\n{RIGHT[key]}"):
        out = v.verify(response, None, ROWS[key])
        assert (out.ok, out.score, out.reason) == (True, 1.0, "correct")
        assert out.details == {"instruction_ids": ROWS[key]["instruction_id_list"], "strict": [True] * n,
                               "loose": [True] * n, "prompt_strict": True, "prompt_loose": True}
        assert out.extracted == RIGHT[key].strip()


@pytest.mark.parametrize("key", sorted(ROWS))
def test_wrong_answer(v, key):
    response, strict = WRONG[key]
    out = v.verify(response, None, ROWS[key])
    assert (out.ok, out.score, out.reason) == (False, 0.0, "wrong_answer")
    assert out.details["strict"] == strict
    assert out.details["loose"] == strict  # no loose variant rescues these
    assert out.details["prompt_strict"] is False


@pytest.mark.parametrize("key", sorted(ROWS))
def test_compliance_only_inside_think_does_not_count(v, key):
    # The reasoning satisfies everything; the committed answer breaks the first instruction
    # of every row (a comma, capitals, no P.S., four sentences, no quotes).
    answer = "Done, Sir. " * 4
    out = v.verify(f"<think>\n{RIGHT[key]}\n</think>\n{answer}", None, ROWS[key])
    assert (out.ok, out.reason) == (False, "wrong_answer")
    assert out.extracted == answer.strip()
    assert out.details["strict"][0] is False


@pytest.mark.parametrize("key", sorted(ROWS))
def test_unclosed_think_is_never_an_answer(v, key):
    n = len(ROWS[key]["instruction_id_list"])
    for response in (f"<think>\n{RIGHT[key]}", f"<think>a</think>\n<think>\n{RIGHT[key]}"):
        out = v.verify(response, None, ROWS[key])
        assert (out.ok, out.score, out.reason) == (False, 0.0, "unclosed_think")
        assert out.details["strict"] == out.details["loose"] == [False] * n


@pytest.mark.parametrize("response", ["", "   \n", "<think>\nall reasoning\n</think>\n\n  "])
def test_empty_answer(v, response):
    out = v.verify(response, None, ROW_1000)
    assert (out.ok, out.reason) == (False, "no_answer")
    assert out.details["strict"] == out.details["loose"] == [False, False, False]


def test_unknown_instruction_id_is_an_error(v):
    item = row(90009, "p", ["punctuation:no_comma", "detectable_format:not_a_real_check"], [kw(), kw()])
    for response in ("no commas here", "<think>unclosed"):
        with pytest.raises(ValueError, match="detectable_format:not_a_real_check"):
            v.verify(response, None, item)


def test_mismatched_kwargs_and_missing_item_are_errors(v):
    with pytest.raises(ValueError, match="2 instructions, 1 kwargs"):
        v.verify("x", None, {**LOWER_END, "kwargs": [kw()]})
    with pytest.raises(ValueError, match="item"):
        v.verify("x", None, None)


def test_raw_jsonl_kwargs_score_like_hf(v):
    raw = {**ROW_1000, "kwargs": [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}]}
    for response in (RIGHT[1000], WRONG[1000][0], RIGHT_1000[:400]):
        assert v.verify(response, None, raw).details == v.verify(response, None, ROW_1000).details


@pytest.mark.parametrize("item,response,strict,loose", [
    # a chatty first line breaks "wrap it all in quotes" and "all lowercase" under strict;
    # lm-eval's loose score drops the first line
    (QUOTED, 'Sure, here it is:\n"Here is my whole answer, wrapped as asked."', [False], [True]),
    (LOWER_END, f"Sure, here it is:\n{LOWER_TEXT} any other questions?", [False, True], [True, True]),
    # markdown bold around the end phrase: loose also tries the text with every `*` removed
    (LOWER_END, f"{LOWER_TEXT} **any other questions?**", [True, False], [True, True]),
])
def test_loose_differs_from_strict(v, item, response, strict, loose):
    out = v.verify(response, None, item)
    assert (out.details["strict"], out.details["loose"]) == (strict, loose)
    assert (out.ok, out.details["prompt_strict"], out.details["prompt_loose"]) == (False, False, all(loose))


def test_metrics_match_lm_eval_aggregation(v):
    verdicts = [
        v.verify(RIGHT[1000], None, ROW_1000),                    # strict TTT  loose TTT
        v.verify(WRONG[1000][0], None, ROW_1000),                 # strict FTT  loose FTT
        v.verify('Sure:\n"wrapped"', None, QUOTED),               # strict F    loose T
        v.verify("<think>no answer</think>", None, PS_KEYWORDS),  # strict FF   loose FF
    ]
    got = aggregate("ifeval", verdicts)  # what the eval job reports
    assert got["metric"] == "prompt_level_strict_acc"
    m = {k: v for k, v in got.items() if k != "metric"}
    assert m == pytest.approx({
        "prompt_level_strict_acc": 1 / 4,
        "prompt_level_loose_acc": 2 / 4,
        "inst_level_strict_acc": 5 / 9,  # flattened over all 9 instructions, not a mean of
        "inst_level_loose_acc": 6 / 9,   # per-prompt fractions ((1 + 2/3 + 0 + 0) / 4 here)
    })
    assert aggregate("ifeval", [])["prompt_level_strict_acc"] is None


def test_punkt_tab_offline_matches_the_nltk_release():
    import nltk
    from nltk.tokenize import PunktTokenizer

    lang_dir = ensure_punkt_tab()
    assert os.path.samefile(str(nltk.data.find("tokenizers/punkt_tab/english/")), lang_dir)
    # byte sizes of NLTK's released punkt_tab/english files (their git-lfs pointers)
    sizes = {"abbrev_types.txt": 619, "collocations.tab": 594, "sent_starters.txt": 241,
             "ortho_context.tab": 236303}
    assert {f: os.path.getsize(os.path.join(lang_dir, f)) for f in sizes} == sizes
    assert PunktTokenizer("english").tokenize("Mr. Lee came at 5 p.m. on Tuesday. He left.") == [
        "Mr. Lee came at 5 p.m. on Tuesday.", "He left."]


def test_langdetect_seeded_and_deterministic(v):
    import langdetect

    first = v.verify(RIGHT[90001], None, LOWER_END)
    assert langdetect.DetectorFactory.seed == 0
    assert all(v.verify(RIGHT[90001], None, LOWER_END).details == first.details for _ in range(5))


def test_import_is_light_and_scoring_needs_no_network():
    # Importing the verifier pulls in none of datasets / nltk / langdetect; a first verify with
    # every socket refused (no nltk.download, no hub) still scores a sentence-count row.
    code = (
        "import socket, sys\n"
        "def deny(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = socket.create_connection = deny\n"
        "import qwen3_recipe.verify.ifeval as m\n"
        "assert not {'datasets', 'nltk', 'langdetect', 'if_verifiable'} & set(sys.modules)\n"
        f"item = {SENTENCES!r}\n"
        f"out = m.IFEvalVerifier().verify({RIGHT[90003]!r}, None, item)\n"
        "assert out.ok, out\n"
    )
    env = {**os.environ, "NLTK_DATA": "", "HOME": os.environ.get("HOME", "/tmp")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_threads_score_like_one_thread(v):
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(RIGHT[k], ROWS[k]) for k in ROWS] + [(WRONG[k][0], ROWS[k]) for k in ROWS]
    alone = [v.verify(r, None, item).details for r, item in jobs]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda j: v.verify(j[0], None, j[1]).details, jobs * 4)) == alone * 4
