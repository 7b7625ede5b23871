"""What the demo's two benchmarks measure, checked against everything recipes/tiny.yaml trains on
(issue 18.3): every catalog file behind a pretraining source, a synth job's prompts (the synth
traces answer those prompts) and an RL stage's prompts.

- evals/tiny_compose (generalisation): no training prompt, and no `Question:` block of a training
  document with its worked steps, mentions both operands of any item, nor holds its question;
  each item's worked steps are one-digit facts that the post-training drills do train.
- evals/tiny_sums (phrasing): every item is a drilled fact whose question text no drill holds - a
  trained fact asked another way, not a new problem. (The pretraining corpora do hold some of its
  questions verbatim inside worked documents; the recipe's decontamination drops those documents:
  the `contamination` table of a demo run lists them.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import REPO

TINY = REPO / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def training() -> dict[str, list[str]]:
    """catalog name -> its units: each string field of each row, documents cut into question blocks."""
    from qwen3_recipe.recipe.validate import load_recipe
    loaded = load_recipe(TINY)
    r = loaded.recipe
    names = {s.dataset for s in r.data.sources.values() if s.dataset}
    synth_prompts = {job.prompts for job in r.synth.jobs.values()}
    assert {s.synth for s in r.data.sources.values() if s.synth} <= set(r.synth.jobs)
    names |= synth_prompts | {st.prompts for st in r.posttrain.stages.values() if getattr(st, "prompts", None)}
    out = {}
    for name in sorted(names):
        path = loaded.catalogs.datasets[name].local_path()
        out[name] = [unit for line in Path(path).read_text(encoding="utf-8").splitlines()
                     for key, value in json.loads(line).items() if key != "id" and isinstance(value, str)
                     for unit in value.split("Question:")]
    return out


def items(name: str) -> list[dict]:
    return [json.loads(line) for line in (REPO / "evals" / "data" / f"{name}.jsonl").read_text().splitlines()]


def operands(question: str) -> tuple[int, str, int]:
    a, op, b = re.fullmatch(r"What is (\d+) ([+-]) (\d+)\?", question).groups()
    return int(a), op, int(b)


def numbers(text: str) -> set[int]:
    return {int(t) for t in "".join(c if c.isdigit() else " " for c in text).split()}


def test_the_demo_runs_both_benchmarks_and_trains_on_what_is_scanned(training):
    import yaml
    recipe = yaml.safe_load(TINY.read_text())
    assert set(recipe["evals"]["benchmarks"]) == {"tiny_sums", "tiny_compose"}
    # the scan covers the pretraining corpora and the prompts of cold start, RL and fusion
    assert {"tiny_web", "tiny_code", "tiny_math", "tiny_worked", "tiny_drills"} <= set(training)
    assert sum(map(len, training.values())) > 5000


def test_no_training_unit_holds_a_compose_problem(training):
    bench = items("tiny_compose")
    assert len(bench) == 100 and len({i["question"] for i in bench}) == 100
    assert {"id", "question", "answer"} == set(bench[0])
    seen = [(name, unit, numbers(unit)) for name, units in training.items() for unit in units]
    for item in bench:
        a, op, b = operands(item["question"])
        assert int(item["answer"]) == (a + b if op == "+" else a - b)
        assert a >= 10 and b >= 10  # two digits each: no item is a one-digit drill
        hits = [(name, unit[:120]) for name, unit, found in seen if a in found and b in found]
        assert not hits, f"{item['question']} shares its operands with {hits[:3]}"
        asked = re.compile(r"(?<!\d)" + re.escape(item["question"].removeprefix("What is ")))
        assert not any(asked.search(unit) for _, unit, _ in seen)


def test_every_compose_step_is_a_trained_one_digit_fact(training):
    drills = {operands(u) for u in training["tiny_drills"] if re.fullmatch(r"What is \d [+-] \d\?", u)}
    for item in items("tiny_compose"):
        a, op, b = operands(item["question"])
        for x, y in ((a % 10, b % 10), (a // 10, b // 10)):  # ones, then tens: no carry, no borrow
            assert (x, op, y) in drills, f"{item['question']}: {x} {op} {y} is not drilled"


def fact(question: str) -> tuple[int, str, int]:
    """(a, op, b) of a one-digit question in any of its four phrasings."""
    a, b = (int(n) for n in re.findall(r"\d+", question))
    return a, "+" if re.search(r"\+|plus|sum", question) else "-", b


def test_tiny_sums_asks_trained_facts_in_untrained_phrasings(training):
    drills = [u for u in training["tiny_drills"] if not u.lstrip("-").isdigit()]  # the prompts, not the answers
    trained = {fact(u) for u in drills}
    assert len(trained) == 155 and len(drills) == 4 * 155 - 155  # every fact, in three of its four phrasings
    for item in items("tiny_sums"):
        assert item["question"] not in drills  # this phrasing of this fact is never a post-training prompt
        assert fact(item["question"]) in trained  # but the fact is
