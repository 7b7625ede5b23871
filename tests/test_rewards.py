"""General-RL rewards (qwen3_recipe/posttrain/rewards.py) with real engines: lingua for the language
rule, the project's verifiers (math-verify, the code sandbox) for the reference, and a tiny HF
reward model built and trained here, on a word-level tokenizer of its own that shares nothing with
the policy's. For every reward: a right answer, a wrong one, and the cheapest hack (the right answer,
or the right language, only inside the think block; an unclosed think block)."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import REPO

from qwen3_recipe.posttrain.rewards import (
    CombinedReward,
    ReferenceReward,
    RewardModel,
    RuleReward,
    combined_reward,
    default_verifier,
    resolve,
)
from qwen3_recipe.posttrain.rollouts import Rollout
from qwen3_recipe.synth.prompts import Prompt


def roll(prompt: str, text: str, gold: str | None = None, item: dict | None = None, mode: str = "think",
         tokens: int = 4, prompt_ids: list[int] | None = None) -> Rollout:
    """A rollout as sample_groups makes one; the token ids are the policy's (fake, tiny)."""
    return Rollout(Prompt("p0", "test", prompt, gold, item or {}), mode, prompt_ids or [1, 2, 3], [5] * tokens,
                   text, None)


def think(thought: str, answer: str) -> str:
    return f"<think>\n{thought}\n</think>\n\n{answer}"


# --------------------------------------------------------------------------- rule: one language

FR_PROMPT = "Quelle est la capitale de la France ? Réponds en une phrase complète, s'il te plaît."
EN_PROMPT = "What is the capital of Germany? Please answer in one full sentence."


@pytest.fixture
def rule(summary) -> RuleReward:
    from qwen3_recipe.posttrain import language as L
    if not L.detector.cache_info().currsize:  # the first test to ask times the detector
        t = time.perf_counter()
        L.detector()
        built = time.perf_counter() - t
        text = "La capitale de la France est Paris, une ville connue pour ses musées et ses cafés. " * 4
        t = time.perf_counter()
        for _ in range(200):
            L.detect(text)
        summary.append(f"lingua detector over {len(L.LANGUAGES)} languages: built in {built:.2f} s, "
                       f"{(time.perf_counter() - t) / 200 * 1e3:.2f} ms per {len(text)}-character answer")
    return RuleReward(max_tokens=100, languages=["en"])


def test_a_french_prompt_answered_in_french_passes_the_language_rule(rule):
    r = roll(FR_PROMPT, think("The user asks about France. Paris.", "La capitale de la France est Paris."))
    assert rule.prompt_language(r.prompt) == "fr"  # detected, although the prompt set says English
    assert rule.checks(r) == {"think": True, "answer": True, "length": True, "language": True}
    assert rule(r) == 1.0


def test_non_latin_right_answers_are_not_penalised(rule):
    # all non-ASCII: the old "at most 10% non-ASCII" rule failed every one of these
    for prompt, answer in [("法国的首都是哪里？请用一句话回答。", "法国的首都是巴黎，也是法国最大的城市。"),
                           ("Какая столица у Франции? Ответьте одним предложением.", "Столица Франции — Париж."),
                           ("フランスの首都はどこですか？一文で答えてください。", "フランスの首都はパリです。")]:
        assert rule.checks(roll(prompt, think("Paris.", answer)))["language"], answer


def test_an_english_prompt_answered_in_german_fails(rule):
    r = roll(EN_PROMPT, think("Germany's capital is Berlin.", "Die Hauptstadt von Deutschland ist Berlin."))
    assert rule.checks(r)["language"] is False and rule(r) == 0.75
    assert rule.checks(roll(EN_PROMPT, think("Berlin.", "The capital of Germany is Berlin.")))["language"]


def test_the_right_language_only_inside_the_think_block_fails(rule):
    hack = roll(FR_PROMPT, think("La capitale de la France est Paris, je réponds en français.",
                                 "The capital of France is Paris, a city famous for its museums."))
    assert rule.checks(hack)["language"] is False
    # and the reverse: thinking in another language is fine, the committed answer is what counts
    ok = roll(EN_PROMPT, think("Die Hauptstadt von Deutschland ist Berlin, ich antworte auf Englisch.",
                               "The capital of Germany is Berlin, a city famous for its museums."))
    assert rule.checks(ok)["language"]


def test_short_or_undetectable_text_passes(rule):
    for answer in ["Paris.", "42", "\\boxed{7}", "OK", ""]:
        assert rule.checks(roll(EN_PROMPT, think("x", answer)))["language"], answer
    assert rule.checks(roll("2 + 2 = ?", think("4", "Die Antwort ist vier, weil zwei und zwei vier ergibt.")))[
        "language"] is False  # an undetectable prompt falls back on the prompt set's one language (en)


def test_the_prompt_set_language_backs_an_undetectable_prompt():
    french = RuleReward(100, languages=["fr"])
    assert french.checks(roll("2 + 2 = ?", think("4", "Le résultat est quatre, car deux et deux font quatre.")))[
        "language"]
    assert not french.checks(roll("2 + 2 = ?", think("4", "Das Ergebnis ist vier, weil zwei und zwei vier ergibt.")))[
        "language"]
    mixed = RuleReward(100, languages=["en", "fr"])  # no one language to fall back on: nothing to compare with
    assert mixed.checks(roll("2 + 2 = ?", think("4", "Das Ergebnis ist vier, weil zwei und zwei vier ergibt.")))[
        "language"]


def test_code_and_maths_do_not_count_as_english(rule):
    answer = ("Voici une fonction qui additionne deux nombres et renvoie leur somme :\n"
              "```python\ndef add_numbers(first_value, second_value):\n    # return the sum of both values\n"
              "    return first_value + second_value\n```\nElle calcule $\\frac{a + b}{1}$ sans difficulté.")
    assert rule.checks(roll("Écris une fonction Python qui additionne deux nombres, s'il te plaît.",
                            think("def add", answer)))["language"]


def test_the_other_rule_checks(rule):
    assert rule.checks(roll(EN_PROMPT, "<think>\nstill thinking about Berlin"))["think"] is False
    assert rule.checks(roll(EN_PROMPT, "Berlin.", mode="no_think"))["think"]
    assert rule.checks(roll(EN_PROMPT, think("x", "Berlin."), tokens=100))["length"] is False
    item = {"must_include": ["Berlin"]}
    assert rule.checks(roll(EN_PROMPT, think("Berlin", "It is Bonn."), item=item))["include:Berlin"] is False
    assert rule.checks(roll(EN_PROMPT, think("x", "It is Berlin."), item=item))["include:Berlin"]


# --------------------------------------------------------------------------- reference

def test_the_default_verifier_follows_the_prompt_set_domain():
    assert default_verifier("math") == {"type": "math"} and default_verifier("code") == {"type": "code"}
    assert default_verifier("instruction") == default_verifier(None) == {"type": "exact", "normalize": True}
    regex = {"type": "regex", "pattern": "{gold}!?"}
    specs = resolve([{"type": "rule", "weight": 1.0}, {"type": "reference", "weight": 0.5},
                     {"type": "reference", "weight": 1.0, "verifier": regex}], "math")
    assert specs[0] == {"type": "rule", "weight": 1.0}
    assert specs[1]["verifier"] == {"type": "math"} and specs[2]["verifier"]["type"] == "regex"  # explicit wins


def test_reference_uses_the_verifier_of_the_prompt_set():
    r = roll("What is 1/4 + 1/4?", think("1/4 + 1/4 = 1/2", "The answer is \\boxed{\\frac{1}{2}}."), gold="0.5")
    assert combined_reward([{"type": "reference", "weight": 1.0}], 100, domain="math")(r) == (1.0, "correct")
    # the same answer, judged by exact match (a prompt set of another domain): 1/2 is not the string 0.5
    assert combined_reward([{"type": "reference", "weight": 1.0}], 100, domain="instruction")(r) == (0.0, "scored")
    explicit = [{"type": "reference", "weight": 1.0, "verifier": {"type": "math"}}]
    assert combined_reward(explicit, 100, domain="instruction")(r)[0] == 1.0


@pytest.mark.parametrize("domain, gold, right, wrong", [
    ("math", "3/4", "So the answer is \\boxed{\\frac{3}{4}}.", "So the answer is \\boxed{\\frac{1}{2}}."),
    ("instruction", "Paris", "The answer is: Paris", "The answer is: Lyon"),
])
def test_reference_right_wrong_and_hacks(domain, gold, right, wrong):
    ref = ReferenceReward(default_verifier(domain))
    q = "Answer the question."
    assert ref(roll(q, think("Let me see.", right), gold)) == 1.0
    assert ref(roll(q, think("Let me see.", wrong), gold)) == 0.0
    assert ref(roll(q, think(right, "I am not sure."), gold)) == 0.0  # the reference answer only in the thinking
    assert ref(roll(q, think(right, wrong), gold)) == 0.0  # tried while thinking, committed to the wrong one
    assert ref(roll(q, "<think>\n" + right, gold)) == 0.0  # unclosed think block
    assert ref(roll(q, think("x", right))) is None  # no reference: nothing to say


ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(10, 5) == 15\n"


def test_reference_for_code_runs_the_items_tests():
    ref = ReferenceReward(default_verifier("code"))
    item = {"tests": ADD_TESTS}
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    assert ref(roll("Write add(a, b).", think("easy", code), None, item)) == 1.0  # tests are the reference
    assert ref(roll("Write add(a, b).", think("easy", code.replace("a + b", "a * b")), None, item)) == 0.0
    assert ref(roll("Write add(a, b).", think(code, "See above."), None, item)) == 0.0  # code only in thinking
    exits = "```python\nimport sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n```"
    assert ref(roll("Write add(a, b).", think("exit before the asserts", exits), None, item)) == 0.0
    assert ref(roll("Write add(a, b).", think("easy", code))) is None  # no tests, no gold


def test_verifiers_are_built_once(monkeypatch):
    from qwen3_recipe.verify import verifiers
    built = []
    real = verifiers.build_verifier
    monkeypatch.setattr(verifiers, "build_verifier", lambda cfg: built.append(cfg) or real(cfg))
    reward = CombinedReward([{"type": "reference", "weight": 1.0}], 100, domain="math")
    for i in range(5):
        reward(roll("1 + 1?", think("2", f"\\boxed{{{i}}}"), gold="2"))
    assert built == [{"type": "math"}]


def test_components_without_a_say_are_left_out(rule):
    reward = combined_reward([{"type": "rule", "weight": 1.0}, {"type": "reference", "weight": 3.0}], 100,
                             domain="math", languages=["en"])
    assert reward(roll("What is 1 + 1?", think("2", "\\boxed{2}"), gold="2")) == (1.0, "correct")
    wrong = roll("What is 1 + 1?", think("2", "\\boxed{3}"), gold="2")
    assert reward(wrong) == (pytest.approx(1.0 / 4), "scored")  # rule 1.0 x 1, reference 0 x 3
    assert reward(roll("Say hi.", think("hi", "Hi!"))) == (1.0, "scored")  # no gold: the rule alone


# --------------------------------------------------------------------------- reward model

RM_PROMPTS = ["What is the capital of France?", "Name the capital city of France.",
              "Which city is the capital of France?", "Tell me the French capital."]
GOOD = ["The capital of France is Paris.", "It is Paris.", "Paris is the capital."]
BAD = ["The capital of France is Berlin.", "It is Berlin.", "Berlin is the capital."]
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"


def build_reward_model(out, chat_template: str | None = TEMPLATE, train: bool = True):
    """A word-level tokenizer of its own (`tokenizers`), a 1-layer Llama classifier over it, trained
    a little (Bradley-Terry) to prefer answers naming Paris over Berlin."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast
    special = ["<unk>", "<pad>", "<s>", "<|user|>", "<|assistant|>", "<|end|>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(RM_PROMPTS + GOOD + BAD + ["long filler words a story"],
                            trainers.WordLevelTrainer(special_tokens=special))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>")
    fast.chat_template = chat_template
    fast.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=48, num_labels=1,
                      pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=None)
    model = LlamaForSequenceClassification(cfg)
    if train:
        rm = RewardModel.__new__(RewardModel)  # its encoding, before there is a model on disk
        rm.tokenizer, rm.max_length = fast, 48
        pairs = [(rm.encode(p, g), rm.encode(p, b)) for p in RM_PROMPTS for g, b in zip(GOOD, BAD)]
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(60):
            loss = sum(-torch.nn.functional.logsigmoid(model(input_ids=torch.tensor([g])).logits[0, 0]
                                                       - model(input_ids=torch.tensor([b])).logits[0, 0])
                       for g, b in pairs) / len(pairs)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    return build_reward_model(tmp_path_factory.mktemp("rm") / "rm")


def test_the_reward_model_reads_its_own_tokens(rm_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    rm = RewardModel(str(rm_dir))
    tok = AutoTokenizer.from_pretrained(rm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
    prompt, answer = "What is the capital of France?", "It is Paris."
    seen = []
    rm.model.register_forward_pre_hook(lambda mod, args, kw: seen.append(kw["input_ids"][0].tolist()), with_kwargs=True)
    # the policy's ids (here nonsense, far outside the reward model's vocabulary) are never used
    got = rm(roll(prompt, think("Paris, surely.", answer), prompt_ids=[10**6, 10**6 + 1]))
    text = "<|user|>What is the capital of France?<|end|><|assistant|>It is Paris.<|end|>"
    assert tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                                   tokenize=False) == text
    want = tok(text, add_special_tokens=False)["input_ids"]
    assert seen == [want] and max(want) < len(tok) and tok.unk_token_id not in want
    policy_tok = AutoTokenizer.from_pretrained(REPO / "tests" / "assets" / "tiny-teacher")
    assert len(policy_tok) != len(tok) and policy_tok(text, add_special_tokens=False)["input_ids"] != want
    with torch.no_grad():
        assert got == pytest.approx(float(torch.sigmoid(model(input_ids=torch.tensor([want])).logits[0, 0])), abs=1e-6)


def test_reward_model_right_wrong_and_hacks(rm_dir):
    rm = RewardModel(str(rm_dir))
    prompt = "Which city is the capital of France?"
    right = rm(roll(prompt, think("Hmm.", "The capital of France is Paris.")))
    wrong = rm(roll(prompt, think("Hmm.", "The capital of France is Berlin.")))
    assert right > wrong + 0.3, (right, wrong)
    # the right answer only in the thinking scores what the committed (wrong) answer scores
    assert rm(roll(prompt, think("The capital of France is Paris.", "The capital of France is Berlin."))) == \
        pytest.approx(wrong, abs=1e-6)
    assert rm(roll(prompt, "<think>\nThe capital of France is Paris.")) == 0.0  # nothing committed
    assert rm(roll(prompt, "The capital of France is Paris.", mode="no_think")) == pytest.approx(right, abs=1e-6)


def test_reward_model_without_a_chat_template_and_truncation(tmp_path, rm_dir):
    from transformers import AutoTokenizer
    plain = RewardModel(str(build_reward_model(tmp_path / "plain", chat_template=None, train=False)))
    tok = AutoTokenizer.from_pretrained(tmp_path / "plain")
    assert not tok.chat_template
    assert plain.encode("What is the capital?", "Paris.") == tok("What is the capital?\n\nParis.")["input_ids"]
    rm = RewardModel(str(rm_dir))
    assert rm.max_length == 48
    ids = rm.encode("long filler words " * 40, "It is Paris.")
    end = rm.tokenizer("It is Paris.<|end|>", add_special_tokens=False)["input_ids"]
    assert len(ids) == 48 and ids[-len(end):] == end  # cut from the front: the answer survives
    assert 0.0 <= rm(roll("long filler words " * 40, think("x", "It is Paris."))) <= 1.0


def test_combined_reward_with_a_reward_model(rm_dir, rule):
    reward = combined_reward([{"type": "rule", "weight": 1.0}, {"type": "reference", "weight": 1.0},
                              {"type": "reward_model", "weight": 2.0, "path": str(rm_dir)}], 100,
                             domain="instruction", languages=["en"])
    good = roll("Which city is the capital of France?", think("Paris", "The answer is: Paris"), gold="Paris")
    bad = roll("Which city is the capital of France?", think("Paris", "The answer is: Berlin"), gold="Paris")
    (g, verdict), (b, _) = reward(good), reward(bad)
    assert verdict == "correct" and g > b


# --------------------------------------------------------------------------- schema

def test_reward_spec_validation():
    from pydantic import ValidationError

    from qwen3_recipe.recipe.schema.posttrain import Reward
    assert Reward(type="reference").verifier is None
    assert Reward(type="reference", verifier={"type": "code", "timeout_s": 5}).verifier.timeout_s == 5
    for bad in [{"type": "reward_model"}, {"type": "rule", "verifier": {"type": "math"}},
                {"type": "reference", "path": "rm"}, {"type": "reference", "verifier": {"type": "nope"}}]:
        with pytest.raises(ValidationError):
            Reward(**bad)
