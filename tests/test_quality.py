"""LLM labels end to end (issues 5.7 and 17.1): the shipped tiny teacher, through vLLM, labels a
sample of two sources along two dimensions (a 0-30 scale and a 16-label set), a classifier per
dimension is trained and saved with a version, the label job writes every document's predicted
labels into its metadata and provenance (`labels`), and label filters act on them, with their
decisions in provenance. The tiny teacher only knows arithmetic: its labels are its habits (prose
gets small numbers, worked arithmetic larger or none), which is what the machinery here is tested on;
labels that mean something need an annotator that can judge (issue 17.5)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from conftest import REPO, query, run_cli
from corpora import write_project

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
TOPICS = ["arithmetic", "algebra", "geometry", "physics", "chemistry", "biology", "history", "news",
          "fiction", "sports", "travel", "cooking", "music", "law", "ads", "other"]
EDU = ("Below is an extract from a web page. Evaluate its educational value on a {{ min }}-{{ max }} scale."
       "\n\nThe extract:\n{{ text }}\n\nConclude with the score as \\boxed{N}.")
TOPIC = ("Below is an extract from a web page. Which topic is it? Topics: {% for l in labels %}{{ loop.index }}. "
         "{{ l }} {% endfor %}\n\nThe extract:\n{{ text }}\n\nConclude with the topic's number as \\boxed{N}.")
QUALITY = f"""
  quality:
    annotator: {{path: {TEACHER}}}
    dimensions:
      edu: {{scale: 0-30, rubric: {json.dumps(EDU)}}}
      topic: {{labels: {json.dumps(TOPICS)}, rubric: {json.dumps(TOPIC)}}}
    max_chars: 200
    max_tokens: 24
    sample: 20
"""
LABEL_FILTERS = """    - {type: label, dimension: edu, min: 3}
    - {type: label, dimension: topic, values: [history, news, arithmetic], sources: [math]}
"""


STAGE = """
  mixtures:
    all: {weights: {web: 0.5, math: 0.5}, max_repetition: 20}
pretrain:
  batch_tokens: 2K
  stages:
    s1: {tokens: 20K, seq_len: 256, mixture: all}
"""


def project(root: Path) -> Path:
    """tests/corpora's web corpus plus 40 worked-arithmetic documents, exact dedup, two label
    dimensions, two label filters and a pretraining stage."""
    recipe, _ = write_project(root, extra_data=QUALITY.rstrip("\n") + STAGE)
    math = (REPO / "datasets_spec" / "data" / "tiny_math.jsonl").read_text().splitlines()[:40]
    (root / "datasets_spec" / "math.jsonl").write_text("\n".join(math) + "\n")
    (root / "datasets_spec" / "math.yaml").write_text(
        "mathdocs:\n  path: math.jsonl\n  format: jsonl\n  text_field: text\n  id_field: id\n  domain: math\n")
    text = recipe.read_text()
    text = text.replace("sources: {web: web}", "sources: {web: web, math: mathdocs}")
    text = text.replace("- {type: gopher_repetition}", "- {type: gopher_repetition, sources: [web]}")
    text = text.replace("    - {type: gopher_quality}\n", "    - {type: gopher_quality, sources: [web]}\n" + LABEL_FILTERS)
    text = text.replace("exact: {enabled: false}", "exact: {enabled: true}")
    recipe.write_text(text)
    return recipe


def jsonl_docs(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl.gz"))
            for line in gzip.open(f, "rt", encoding="utf-8")]


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("quality")
    recipe = project(root)
    run = root / "run"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "quality", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return recipe, run


# -- reading answers: right, wrong, and the cheap ways to look right ---------------------------------
@pytest.mark.parametrize("output, score, how", [
    ("The answer is \\boxed{3}.", 3.0, "boxed"),
    ("<think>\nmaybe 9\n</think>\n\nEducational score: 4", 4.0, "labelled"),
    ("Justification... **Score:** 2", 2.0, "labelled"),
    ("I would give it 5 out of 5.", 5.0, "digit"),
    ("The answer is \\boxed{26}.", None, "out_of_range"),
    ("No idea.", None, "unparseable"),
    ("<think>\nstill going, 3 points so far", None, "unparseable"),
    ("0 1 2 3 4 5", None, "ambiguous"),              # every score at once: none
    ("<think>\n\\boxed{5}\n</think>\nNo idea.", None, "unparseable"),  # a score hidden in the thinking
])
def test_parse_score(output, score, how):
    from qwen3_recipe.quality.rubric import parse_score
    assert parse_score(output, 0, 5) == (score, how)


def test_parse_score_on_a_scale_that_does_not_start_at_zero():
    from qwen3_recipe.quality.rubric import parse_score
    assert parse_score("\\boxed{0}", 1, 10) == (None, "out_of_range")
    assert parse_score("Score: 10", 1, 10) == (10.0, "labelled")


LABELS = ["math", "code", "news"]


@pytest.mark.parametrize("output, label, how", [
    ("It is \\boxed{code}.", "code", "boxed"),
    ("\\boxed{ News }", "news", "boxed"),                # case and spaces
    ("\\boxed{2}", "code", "boxed"),                     # the label's number in the rubric's list
    ("Label: Math", "math", "labelled"),
    ("This is clearly a news report.", "news", "named"),
    ("Option 3.", "news", "number"),
    ("\\boxed{poetry}", None, "not_a_label"),
    ("\\boxed{7}", None, "not_a_label"),                 # no seventh label
    ("math, code or news: all of them", None, "ambiguous"),  # naming every label wins nothing
    ("1 2 3", None, "ambiguous"),
    ("A mathematician's blog", None, "unparseable"),     # a word containing a label is not the label
    ("<think>\nprobably code\n</think>\n", None, "unparseable"),  # only the answer counts
    ("<think>\nmath", None, "unparseable"),
])
def test_parse_label(output, label, how):
    from qwen3_recipe.quality.rubric import parse_label
    assert parse_label(output, LABELS) == (label, how)


def test_default_rubrics_render_the_document_and_the_choices():
    from qwen3_recipe.quality.rubric import compile_rubric, render, rubric_text
    doc = "Photosynthesis turns light into sugar. " * 50
    edu = render(compile_rubric(rubric_text({"scale": "0-5", "rubric": "fineweb_edu"})), doc, "web", "edu",
                 {"scale": "0-5"}, 100)
    assert "Photosynthesis turns light" in edu and "Educational score:" in edu and len(edu) < 3000
    domain = render(compile_rubric(rubric_text({"labels": LABELS})), doc, "web", "domain", {"labels": LABELS}, 100)
    assert "domain" in domain and "1. math\n2. code\n3. news" in domain and "\\boxed{label}" in domain
    scale = render(compile_rubric(rubric_text({"scale": "1-10"})), doc, "web", "clarity", {"scale": "1-10"}, 100)
    assert "clarity" in scale and "from 1 to 10" in scale


# -- classifiers -----------------------------------------------------------------------------------
SETTINGS = {"type": "hashing_ridge", "n_features": 2**12, "ngrams": 1, "alpha": 1.0, "holdout": 0.25}  # pre-17.5
DEFAULTS = {"type": "hashing_ridge", "n_features": 2**12, "ngrams": 2, "tokens": "words_and_symbols",
            "alpha": "auto", "holdout": 0.25}
WORDS = {"math": "sum add carry digits", "code": "def return import class", "news": "council mayor vote city"}


def rows(labels: list[str], n: int = 60) -> list[dict]:
    return [{"doc_id": f"d{i}", "text": f"{WORDS[labels[i % len(labels)]]} {i}", "value": labels[i % len(labels)]}
            for i in range(n)]


@pytest.mark.parametrize("settings", [SETTINGS, DEFAULTS], ids=["alpha1-words", "auto-symbols"])
@pytest.mark.parametrize("labels", [["math", "code", "news"], ["news", "math"], ["math", "news"]])
def test_label_classifier_learns_saves_and_reloads(tmp_path, labels, settings):
    from qwen3_recipe.quality.classifier import QualityClassifier, train
    context = {"dimension": "domain", "labels": labels, "annotator": "a", "prompt_digest": "p", "max_chars": 100}
    clf, held = train(rows(labels), settings, context, 0)
    assert clf.meta["alpha_used"] > 0 and (settings["alpha"] == "auto" or clf.meta["alpha_used"] == 1.0)
    assert held and clf.meta["holdout_accuracy"] == 1.0 and clf.meta["classes"] == labels
    probe = [WORDS[label] for label in labels]
    assert clf.predict_labels(probe) == labels
    clf.save(tmp_path / "domain")
    again = QualityClassifier.load(tmp_path / "domain")
    assert again.predict_labels(probe) == labels and again.version == clf.version
    with pytest.raises(TypeError, match="predicts labels"):
        again.predict(probe)


def test_the_default_tokens_see_digits_and_operators_that_the_old_ones_drop(tmp_path):
    """Worked vs garbled arithmetic differs only in the order of one-character tokens ('7 + 7 = 14'
    vs '= 7 14 + 7'): scikit-learn's default token pattern drops all of them, the default keeps
    them; a classifier saved without `tokens` (before it existed) loads with the old pattern."""
    import random

    from qwen3_recipe.quality.classifier import QualityClassifier, train
    rng = random.Random(0)
    def doc(i: int, worked: bool) -> dict:
        lines = []
        for _ in range(6):
            a, b = rng.randrange(10), rng.randrange(10)
            words = [str(a), "+", str(b), "=", str(a + b)]
            if not worked:
                rng.shuffle(words)
            lines.append(" ".join(words) + ".")
        return {"doc_id": f"d{i}", "text": "\n".join(lines), "value": 2.0 if worked else 0.0}
    train_rows, test_rows = [doc(i, i % 2 == 0) for i in range(80)], [doc(i, i % 2 == 0) for i in range(80, 160)]
    context = {"dimension": "worked", "scale": [0, 2], "annotator": "a", "prompt_digest": "p", "max_chars": 100}

    def accuracy(clf) -> float:
        pred = clf.predict([r["text"] for r in test_rows])
        return sum(round(p) == r["value"] for p, r in zip(pred, test_rows)) / len(test_rows)
    new, _ = train(train_rows, DEFAULTS, context, 0)
    old, _ = train(train_rows, SETTINGS | {"ngrams": 2}, context, 0)
    assert accuracy(new) >= 0.8 > 0.6 >= accuracy(old), (accuracy(new), accuracy(old))
    old.save(tmp_path / "old")
    assert "tokens" not in QualityClassifier.load(tmp_path / "old").meta
    assert accuracy(QualityClassifier.load(tmp_path / "old")) == accuracy(old)


def test_a_label_set_seen_with_one_label_predicts_it_and_a_scale_stays_in_range(tmp_path):
    from qwen3_recipe.quality.classifier import QualityClassifier, train
    context = {"dimension": "domain", "labels": LABELS, "annotator": "a", "prompt_digest": "p", "max_chars": 100}
    clf, _ = train(rows(["code"], 12), SETTINGS, context, 0)
    assert clf.predict_labels(["anything at all"]) == ["code"]
    scored = [{"doc_id": f"d{i}", "text": ("sum add " * (i % 6)) + "x", "value": float(i % 6)} for i in range(60)]
    context = {"dimension": "edu", "scale": [0, 5], "annotator": "a", "prompt_digest": "p", "max_chars": 100}
    clf, _ = train(scored, SETTINGS, context, 0)
    clf.save(tmp_path / "edu")
    predicted = QualityClassifier.load(tmp_path / "edu").predict(["sum add " * 40, "x"])
    assert 0 <= predicted[1] < predicted[0] <= 5 and "holdout_mae" in clf.meta
    with pytest.raises(ValueError, match="no usable edu label"):
        train([{"doc_id": "a", "text": "t", "value": None}], SETTINGS, context, 0)


# -- the recipe ------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (("{{ text }}", "{{ txt }}"), "data.quality.dimensions.edu.rubric: .*use \\{\\{ text \\}\\}"),
    (("{{ text }}", "{{ text }"), "data.quality.dimensions.edu.rubric: not a jinja2 template"),
    ((f"{{path: {TEACHER}}}", "{preset: Qwen3-8B}"), "data.quality: .*annotator: give `path`"),
    (("sample: 20", "sample: 20\n    sources: [webb]"), "quality.sources: unknown source.*'webb'"),
    (("scale: 0-30", "scale: 30-0"), "dimensions.edu: .*first number must be below"),
    (("scale: 0-30", "scale: 0-30, labels: [a, b]"), "dimensions.edu: .*not both"),
    (("scale: 0-30", "scale: five"), "dimensions.edu.scale: .*pattern"),
    (('["arithmetic", "algebra"', '["arithmetic", "Arithmetic"'), "topic.labels: .*distinct"),
    (("      topic:", "      Topic:"), "data.quality.dimensions: .*lower-case"),
    (("dimension: edu, min: 3", "dimension: edux, min: 3"), "data.filters.3.dimension: unknown dimension"),
    (("dimension: edu, min: 3", "dimension: edu, values: [a]"), "data.filters.3.values: .*is a scale"),
    (("dimension: edu, min: 3", "dimension: edu"), "data.filters.3: .*give `min`"),
    (("values: [history, news, arithmetic]", "min: 2"), "data.filters.4.min: .*is a label set"),
    (("values: [history, news, arithmetic]", "values: [history, gossip]"),
     "data.filters.4.values.1: unknown label of 'topic' 'gossip'"),
    (("sample: 20", "sample: 20\n    sources: [web]"), "data.filters.4.sources: .*'math' carry no labels"),
    # mixture weight keys: label slices (YAML: quote a key with brackets in a flow mapping, and `*`)
    (("{web: 0.5", '{"web[edux>=3]": 0.5'), r"weights.web\[edux>=3\]: unknown dimension of data.quality"),
    (("{web: 0.5", '{"web[topic>=3]": 0.5'), "'topic' is a label set: compare it with = or !="),
    (("{web: 0.5", '{"web[edu=high]": 0.5'), "'edu' is a scale: compare it with a number, not 'high'"),
    (("{web: 0.5", '{"*[topic=history|gossip]": 0.5'), "unknown label of 'topic' \\(in .*\\) 'gossip'"),
    (("{web: 0.5", '{"webb[edu>=3]": 0.5'), "unknown source 'webb'"),
    (("{web: 0.5", '{"web[3>edu]": 0.5'), "'3>edu' in 'web\\[3>edu\\]' is not a label condition"),
    (("{web: 0.5", '{"*": 0.5'), "`\\*` needs a label condition"),
    (("{web: 0.5", '{"web[edu>=3|4]": 0.5'), "`>=` takes one number"),
    (("sample: 20", "sample: 20\n    sources: [math]"), r"weights.web\[edu>=3\]: source 'web' carries no labels"),
])
def test_recipe_errors_name_the_setting(tmp_path, change, message):
    from qwen3_recipe.errors import RecipeError
    from qwen3_recipe.recipe.validate import load_recipe
    recipe = project(tmp_path)
    assert change[0] in recipe.read_text()
    text = recipe.read_text().replace(*change, 1)
    if "carries no labels" in message:
        text = text.replace("{web: 0.5", '{"web[edu>=3]": 0.5')
    recipe.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert re.search(message, "\n".join(f"{p.path}: {p.message}" for p in info.value.problems)), info.value.problems
    assert all(p.loc for p in info.value.problems), info.value.problems  # each names file and line


def test_a_label_filter_without_quality_is_refused_where_it_is_written(tmp_path):
    from qwen3_recipe.errors import RecipeError
    from qwen3_recipe.recipe.validate import load_recipe
    recipe = project(tmp_path)
    recipe.write_text(recipe.read_text().replace(QUALITY.rstrip("\n"), "").replace("{web: 0.5", '{"*[edu>=3]": 0.5'))
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert any(p.path == "data.mixtures.all.weights.*[edu>=3]" and "needs `data.quality`" in p.message and p.loc
               for p in info.value.problems), info.value.problems
    problems = [p for p in info.value.problems if "needs `data.quality`" in p.message and "filters" in p.path]
    assert [p.path for p in problems] == ["data.filters.3.type", "data.filters.4.type"], info.value.problems
    assert problems[0].loc and problems[0].loc.line == recipe.read_text().splitlines().index(
        LABEL_FILTERS.splitlines()[0]) + 1


def test_quality_jobs_feed_tokenizer_and_mixtures_with_the_default_dimension(tmp_path):
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    sets = ["data.quality.dimensions.edu=0-5", "data.quality.dimensions.domain=[math, prose]"]  # beside `worked`
    plan = make_plan(load_recipe(REPO / "recipes" / "tiny.yaml", sets))
    deps = plan.deps
    assert deps["quality.annotate"] == ["data.dedup"] and deps["quality.label"] == ["data.dedup", "quality.annotate"]
    assert deps["tokenizer"] == ["quality.label"] and "quality.label" in deps["mix.s1_general"]
    dims = plan["quality.annotate"].job.config["quality"]["dimensions"]
    assert set(dims) == {"worked", "edu", "domain"} and "{{ labels }}" not in dims["domain"]["rubric"]
    assert "1. {{ label }}" not in dims["domain"]["rubric"] and "{% for label in labels %}" in dims["domain"]["rubric"]
    recipe, _ = write_project(tmp_path, extra_data=f"  quality: {{annotator: {{path: {TEACHER}}}, sample: 50}}")
    default = make_plan(load_recipe(recipe))
    (edu,) = default["quality.annotate"].job.config["quality"]["dimensions"].values()
    assert edu["rubric"].startswith("Below is an extract") and edu["scale"] == "0-5"  # FineWeb-Edu's



def test_a_label_filter_change_reruns_only_the_label_job(tmp_path):
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    recipe = project(tmp_path)
    plan = make_plan(load_recipe(recipe))
    edited = recipe.with_name("edited.yaml")
    edited.write_text(recipe.read_text().replace("dimension: edu, min: 3", "dimension: edu, min: 4"))
    other = make_plan(load_recipe(edited))
    changed = {p.job.name for p in plan.jobs if p.job.fingerprint != other[p.job.name].job.fingerprint}
    assert "quality.label" in changed and not changed & {"quality.annotate", "data.web", "data.math", "data.dedup"}
    assert plan["quality.label"].job.config["filters"][0] | {"min": 4.0} == other["quality.label"].job.config["filters"][0]


# -- end to end ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_annotations_record_each_dimension_with_raw_outputs(quality_run):
    _, run = quality_run
    rows = query(run, "select source, dimension, annotator, prompt_digest, output, score, label, parsed, split "
                      "from annotations")
    assert len(rows) == 80 and {(r[0], r[1]) for r in rows} == {(s, d) for s in ("web", "math") for d in ("edu", "topic")}
    (annotator,) = {r[2] for r in rows}  # the model's path and a digest of its files (synth/job.py teacher_id)
    assert annotator.startswith(f"{TEACHER}@") and len({r[3] for r in rows}) == 2  # one prompt per dimension
    assert all(r[4] for r in rows)  # the raw output, always
    edu = [r for r in rows if r[1] == "edu"]
    topic = [r for r in rows if r[1] == "topic"]
    assert all(r[6] is None for r in edu) and all(r[5] is None for r in topic)
    assert any(r[5] is not None for r in edu) and any(r[6] is not None for r in topic), "the teacher parsed sometimes"
    assert all(0 <= r[5] <= 30 and r[7] in ("boxed", "labelled", "digit") and r[8] for r in edu if r[5] is not None)
    assert all(r[6] in TOPICS and r[7] in ("boxed", "labelled", "named", "number") for r in topic if r[6])
    assert all(r[8] is None and r[7] not in ("boxed", "labelled") for r in rows if (r[5] if r[1] == "edu" else r[6])
               is None and r[7] in ("unparseable", "ambiguous"))


@pytest.mark.slow
def test_a_classifier_per_dimension_trained_saved_and_versioned(quality_run):
    from qwen3_recipe.quality.classifier import QualityClassifier
    _, run = quality_run
    views = {r[0]: r[1:] for r in query(run, "select dimension, classifier_version, train_size, holdout_size "
                                             "from classifiers")}
    assert set(views) == {"edu", "topic"}
    for dimension in ("edu", "topic"):
        folder = run / "jobs" / "quality.annotate" / "classifiers" / dimension
        meta = json.loads((folder / "classifier.json").read_text())
        clf = QualityClassifier.load(folder)
        assert clf.version == meta["version"] and len(meta["version"]) == 12 and meta["dimension"] == dimension
        assert meta["annotator"].startswith(f"{TEACHER}@") and meta["train_size"] > 0
        assert views[dimension] == (meta["version"], meta["train_size"], meta["holdout_size"])
    assert json.loads((run / "jobs/quality.annotate/classifiers/edu/classifier.json").read_text())["scale"] == [0, 30]
    assert set(json.loads((run / "jobs/quality.annotate/classifiers/topic/classifier.json").read_text())["classes"]) \
        <= set(TOPICS)


@pytest.mark.slow
def test_every_document_is_labelled_in_metadata_and_provenance(quality_run):
    _, run = quality_run
    curated = {d["id"]: d for d in jsonl_docs(run / "jobs" / "data.dedup" / "output")}
    labels = query(run, "select doc_id, dimension, score, label, classifier_version from labels")
    assert len(labels) == 2 * len(curated) and {r[0] for r in labels} == set(curated)  # every one, both dimensions
    versions = dict(query(run, "select dimension, classifier_version from classifiers"))
    assert all(r[4] == versions[r[1]] for r in labels)
    assert all((r[2] is not None) == (r[1] == "edu") and (r[3] in TOPICS) == (r[1] == "topic") for r in labels)
    by_doc = {(r[0], r[1]): r[2] if r[1] == "edu" else r[3] for r in labels}
    out = jsonl_docs(run / "jobs" / "quality.label" / "output")
    assert out and all(d["metadata"]["labels"] == {"edu": by_doc[d["id"], "edu"], "topic": by_doc[d["id"], "topic"]}
                       for d in out)
    dist = query(run, "select dimension, sum(documents) from label_distribution group by all order by 1")
    assert dist == [("edu", len(curated)), ("topic", len(curated))]


@pytest.mark.slow
def test_label_filters_decide_by_the_labels_and_the_funnel_shows_them(quality_run):
    _, run = quality_run
    labels = {(r[0], r[1]): r[2] if r[1] == "edu" else r[3]
              for r in query(run, "select doc_id, dimension, score, label from labels")}
    source = dict(query(run, "select doc_id, source from labels where dimension = 'edu'"))
    rows = query(run, "select step, doc_id, decision, reason from decisions where job = 'quality.label'")
    edu = {r[1]: r for r in rows if r[0] == "label_edu"}
    assert set(edu) == set(source)  # every document reached the first filter
    for doc, (_, _, decision, reason) in edu.items():
        assert (decision == "kept") == (labels[doc, "edu"] >= 3)
        assert reason == (None if decision == "kept" else "edu_below_3")
    topic = {r[1]: r for r in rows if r[0] == "label_topic"}
    assert set(topic) == {d for d, r in edu.items() if r[2] == "kept"}
    for doc, (_, _, decision, reason) in topic.items():
        keep = source[doc] != "math" or labels[doc, "topic"] in ("history", "news", "arithmetic")
        assert (decision == "kept") == keep and reason == (None if keep else "topic_not_in_values")
    out = {d["id"] for d in jsonl_docs(run / "jobs" / "quality.label" / "output")}
    assert out == {d for d, r in topic.items() if r[2] == "kept"}
    funnel = query(run, "select step, sum(documents_in), sum(kept), sum(dropped) from funnel "
                        "where job = 'quality.label' group by all order by min(step_index)")
    assert [f[0] for f in funnel] == ["labels", "label_edu", "label_topic"]
    assert funnel[1][1:] == (len(edu), sum(r[2] == "kept" for r in edu.values()), sum(r[2] == "dropped" for r in edu.values()))


@pytest.mark.slow
def test_a_scale_classifier_as_a_data_filter_and_a_label_set_one_refused(quality_run):
    from datatrove.data import Document

    from qwen3_recipe.data.filters import build_filter
    from qwen3_recipe.errors import RecipeError
    from qwen3_recipe.recipe.schema.data import QualityClassifier
    _, run = quality_run
    folder = run / "jobs" / "quality.annotate" / "classifiers"
    cfg = QualityClassifier(type="quality_classifier", model_path=str(folder / "edu" / "model.npz"), threshold=10)
    step = build_filter(cfg, "data.filters.0", REPO)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate([
        "The quiet farmer repaired a wooden bridge near the old harbour and then visited the market.",
        "Question: What is 562 × 9?\n<think>\n2 × 9 = 18, write 8 carry 1.\n</think>\nThe answer is \\boxed{5058}."])]
    results = step.filter_batch(docs)
    scores = [d.metadata["quality_score"] for d in docs]
    assert [r is True for r in results] == [s >= 10 for s in scores]
    assert all(r is True or r == (False, "quality_below_threshold") for r in results)
    for path in (folder / "topic", Path("nowhere")):
        with pytest.raises(RecipeError, match="no quality classifier of a scale"):
            build_filter(cfg.model_copy(update={"model_path": str(path)}), "data.filters.0", REPO)


@pytest.mark.slow
def test_a_filter_change_reruns_the_label_job_only_and_replaces_its_provenance(quality_run, tmp_path):
    import shutil
    recipe, run = quality_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    edited = recipe.with_name("edited.yaml")
    edited.write_text(recipe.read_text().replace("dimension: edu, min: 3", "dimension: edu, min: 0"))
    proc = run_cli("run", str(edited), "-o", str(copy), "--only", "quality", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "skip quality.annotate (cached)" in proc.stdout
    rows = query(copy, "select decision, count(*) from decisions where job = 'quality.label' and step = 'label_edu' "
                       "group by all")
    assert dict(rows) == {"kept": len(jsonl_docs(run / "jobs" / "data.dedup" / "output"))}


@pytest.mark.slow
@pytest.mark.extended  # in `make test-all`, not CI: served generation equals in-process generation in CI
# through test_synth's served tests (the same InferenceRunner path)
def test_annotations_served_by_a_vllm_server_equal_the_in_process_engines(quality_run, tmp_path):
    """data.quality.serving {type: vllm}: the annotator behind datatrove's InferenceRunner and a real
    vLLM server writes the outputs (and labels) vLLM in process wrote, document for document."""
    import shutil
    recipe, run = quality_run
    copy = tmp_path / "served"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "jobs" / "quality.annotate")  # generated anew: serving is not in the fingerprint
    proc = run_cli("run", str(recipe), "-o", str(copy), "--only", "quality.annotate",
                   "--set", "data.quality.serving={type: vllm}", cwd=recipe.parent, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (copy / "jobs" / "quality.annotate" / "served").is_dir()
    sql = "select dimension, doc_id, output, score, label from annotations order by all"
    served = query(copy, sql)
    assert len(served) == 80 and served == query(run, sql)


def sliced_weights(run: Path) -> dict[str, float]:
    """A mixture over label slices that the run's labels can fill: web split at its median predicted
    edu score, math's most common predicted topic across all sources, the rest of math."""
    kept = {r[0] for r in query(run, "select doc_id from decisions where job = 'quality.label' "
                                     "and step = 'label_topic' and decision = 'kept'")}
    labels = query(run, "select doc_id, source, dimension, score, label from labels")
    edu = sorted(r[3] for r in labels if r[0] in kept and r[1] == "web" and r[2] == "edu")
    median = edu[len(edu) // 2]
    topics = [r[4] for r in labels if r[0] in kept and r[1] == "math" and r[2] == "topic"]
    common = max(set(topics), key=topics.count)
    weights = {f"web[edu>={median}]": 0.3, f"web[edu<{median}]": 0.2, f"*[topic={common}]": 0.3}
    if topics.count(common) < len(topics):
        weights["math"] = 0.2
    else:
        weights[f"*[topic={common}]"] = 0.5
    return weights


@pytest.mark.slow
def test_a_label_sliced_mixture_realises_its_declared_shares(quality_run, tmp_path):
    """Weights over slices (`web[edu>=M]`, `*[topic=T]`) beside a plain source (the rest of it): each
    document drawn under the first slice it matches, realised token shares within 1% of declared
    (SQL over provenance), each document's slice agreeing with its labels; and `plan` measures a
    slice's supply on the annotated sample (a slice asked for more than it holds is a shortfall)."""
    import shutil

    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    recipe, run = quality_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    weights = sliced_weights(run)
    edited = recipe.with_name("sliced.yaml")
    edited.write_text(recipe.read_text().replace("{web: 0.5, math: 0.5}", json.dumps(weights)))
    proc = run_cli("run", str(edited), "-o", str(copy), "--only", "mix.s1", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "quality.label (quality_label)" not in proc.stdout  # done: not run again
    shares = query(copy, """select m.weight_key, sum(m.tokens * m.repetitions) / sum(sum(m.tokens * m.repetitions)) over (),
                                   any_value(t.declared_share)
                            from mixture m join mixture_targets t on t.stage = m.stage and t.source = m.weight_key
                            where m.stage = 's1' group by all""")
    assert {k for k, _, _ in shares} == set(weights)
    assert all(abs(realised - declared) <= 0.01 for _, realised, declared in shares), shares
    # the slice a document was drawn under holds for its labels, and it is the first that does
    from qwen3_recipe.recipe.slices import assign, parse_keys
    labels: dict[str, dict] = {}
    for doc, dim, score, label in query(copy, "select doc_id, dimension, score, label from labels"):
        labels.setdefault(doc, {})[dim] = score if dim == "edu" else label
    rows = query(copy, "select doc_id, source, weight_key from mixture where stage = 's1'")
    assert rows and all(assign(src, labels[doc], parse_keys(weights)) == key for doc, src, key in rows)
    assert {src for _, src, _ in rows} == {"web", "math"}  # mixture.source stays the real source
    # plan: the annotated sample says what each slice holds
    greedy = dict(weights)
    first = next(iter(greedy))
    greedy = {k: (0.97 if k == first else 0.01) for k in greedy}
    greedy = {k: round(v, 2) for k, v in greedy.items()}
    greedy[first] = round(1 - sum(v for k, v in greedy.items() if k != first), 2)
    tight = recipe.with_name("tight.yaml")
    tight.write_text(edited.read_text().replace(json.dumps(weights), json.dumps(greedy))
                     .replace("max_repetition: 20", "max_repetition: 1").replace("tokens: 20K", "tokens: 2M"))
    short = make_plan(load_recipe(tight), copy)["pretrain.s1"].shortfalls
    assert first in [s.source for s in short] and all(s.have < s.need for s in short)
    whole = tight.with_name("whole.yaml")
    whole.write_text(tight.read_text().replace(json.dumps(greedy), '{"web": 0.97, "math": 0.03}'))
    have = {s.source: s.have for s in make_plan(load_recipe(whole), copy)["pretrain.s1"].shortfalls}
    # a slice holds part of its source: less than the whole source would (the sample's share of it)
    assert have.get("web", 0) > next(s.have for s in short if s.source == first) > 0
    assert make_plan(load_recipe(edited), copy)["pretrain.s1"].shortfalls == []


@pytest.mark.parametrize("value", [0.5, 1.5, 2.5, 0.49, 1.999, 0.0])
def test_the_printed_agreement_rounds_as_the_label_agreement_view_does(value):
    """quality.annotate's printed agreement (Python) and label_agreement (DuckDB) judge a score alike."""
    import duckdb

    from qwen3_recipe.quality.rubric import agrees
    (sql,), = duckdb.sql(f"select round({value}::double)::bigint::varchar").fetchall()
    assert agrees(value, sql) is True and agrees(value, str(int(sql) + 1)) is False
    assert agrees("math", "math") is True and agrees("code", "math") is False and agrees(None, "1") is None
