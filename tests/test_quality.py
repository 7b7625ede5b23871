"""LLM-based quality filtering end to end (issue 5.7): the shipped tiny teacher (a real transformers
engine) scores a sample of two sources against a rubric, a classifier is trained on the scores and
saved with a version, the datatrove filter applies it to the whole curated corpus, and the scores are
SQL in provenance.duckdb. The tiny teacher only knows arithmetic: on a 0-30 scale it answers prose
with small numbers and worked arithmetic with larger ones (and sometimes out of range), which is
what the classifier has to learn."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from conftest import REPO, query, run_cli
from corpora import write_project

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
RUBRIC = ("Below is an extract from a web page. Evaluate its educational value on a 0-{{ max_score }} scale."
          "\n\nThe extract:\n{{ text }}\n\nConclude with the score as \\boxed{N}.")
QUALITY = f"""
  quality:
    annotator: {{path: {TEACHER}}}
    engine: transformers
    rubric: {json.dumps(RUBRIC)}
    max_score: 30
    max_chars: 200
    max_tokens: 24
    sample: 20
    threshold: 10
"""


def project(root: Path) -> Path:
    """tests/corpora's web corpus plus 40 worked-arithmetic documents, exact dedup, the quality section."""
    recipe, _ = write_project(root)
    math = (REPO / "datasets_spec" / "data" / "tiny_math.jsonl").read_text().splitlines()[:40]
    (root / "datasets_spec" / "math.jsonl").write_text("\n".join(math) + "\n")
    (root / "datasets_spec" / "math.yaml").write_text(
        "mathdocs:\n  path: math.jsonl\n  format: jsonl\n  text_field: text\n  id_field: id\n  domain: math\n")
    text = recipe.read_text()
    text = text.replace("sources: {web: web}", "sources: {web: web, math: mathdocs}")
    text = text.replace("- {type: gopher_repetition}", "- {type: gopher_repetition, sources: [web]}")
    text = text.replace("- {type: gopher_quality}", "- {type: gopher_quality, sources: [web]}")
    text = text.replace("exact: {enabled: false}", "exact: {enabled: true}")
    recipe.write_text(text.replace("\nexecution:", QUALITY + "execution:"))
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


# -- parsing and the recipe ------------------------------------------------------------------------
@pytest.mark.parametrize("output, score, how", [
    ("The answer is \\boxed{3}.", 3.0, "boxed"),
    ("<think>\nmaybe 9\n</think>\n\nEducational score: 4", 4.0, "labelled"),
    ("Justification... **Score:** 2", 2.0, "labelled"),
    ("I would give it 5 out of 5.", 5.0, "digit"),
    ("The answer is \\boxed{26}.", None, "out_of_range"),
    ("No idea.", None, "unparseable"),
    ("<think>\nstill going, 3 points so far", None, "unparseable"),
])
def test_parse_score(output, score, how):
    from qwen3_recipe.quality.rubric import parse_score
    assert parse_score(output, 5) == (score, how)


def test_default_rubric_renders_the_document():
    from qwen3_recipe.quality.rubric import DEFAULT_RUBRIC, compile_rubric, render
    text = render(compile_rubric(DEFAULT_RUBRIC), "Photosynthesis turns light into sugar. " * 50, "web", 5, 100)
    assert "Photosynthesis turns light" in text and "Educational score:" in text
    assert len(text) < len(DEFAULT_RUBRIC) + 120  # the document cut to max_chars


@pytest.mark.parametrize("change, message", [
    (("{{ text }}", "{{ txt }}"), "data.quality.rubric: .*use \\{\\{ text \\}\\}"),
    (("{{ text }}", "{{ text }"), "data.quality.rubric: not a jinja2 template"),
    ((f"{{path: {TEACHER}}}", "{preset: Qwen3-8B}"), "data.quality: .*annotator: give `path`"),
    (("sample: 20", "sample: 20\n    sources: [webb]"), "quality.sources: unknown source.*'webb'"),
])
def test_recipe_errors_name_the_setting(tmp_path, change, message):
    from qwen3_recipe.errors import RecipeError
    from qwen3_recipe.recipe.validate import load_recipe
    recipe = project(tmp_path)
    recipe.write_text(recipe.read_text().replace(*change))
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert re.search(message, "\n".join(f"{p.path}: {p.message}" for p in info.value.problems)), info.value.problems


def test_quality_jobs_feed_tokenizer_and_mixtures_and_threshold_reruns_only_the_filter():
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.recipe.validate import load_recipe
    sets = [f"data.quality={{annotator: {{path: {TEACHER}}}, engine: transformers, sources: [web], sample: 50}}"]
    plan = make_plan(load_recipe(REPO / "recipes" / "tiny.yaml", sets))
    deps = plan.deps
    assert deps["quality.annotate"] == ["data.dedup"] and deps["quality.filter"] == ["data.dedup", "quality.annotate"]
    assert deps["tokenizer"] == ["quality.filter"] and "quality.filter" in deps["mix.s1_general"]
    assert plan["quality.annotate"].job.config["quality"]["rubric"].startswith("Below is an extract")
    other = make_plan(load_recipe(REPO / "recipes" / "tiny.yaml", sets + ["data.quality.threshold=2.5"]))
    assert other["quality.annotate"].job.fingerprint == plan["quality.annotate"].job.fingerprint
    assert other["quality.filter"].job.fingerprint != plan["quality.filter"].job.fingerprint


# -- end to end ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_annotations_record_annotator_scores_and_raw_outputs(quality_run):
    _, run = quality_run
    rows = query(run, "select source, annotator, prompt_digest, output, score, parsed, split from annotations")
    assert len(rows) == 40 and {r[0] for r in rows} == {"web", "math"}  # 20 per source
    (annotator,) = {r[1] for r in rows}  # the model's path and a digest of its files (synth/job.py teacher_id)
    assert annotator.startswith(f"{TEACHER}@") and len({r[2] for r in rows}) == 1
    assert all(r[3] for r in rows)  # the raw output, always
    scored = [r for r in rows if r[4] is not None]
    assert scored and all(0 <= r[4] <= 30 and r[5] in ("boxed", "labelled", "digit") and r[6] for r in scored)
    assert all(r[5] in ("out_of_range", "unparseable") and r[6] is None for r in rows if r[4] is None)


@pytest.mark.slow
def test_classifier_trained_saved_and_versioned(quality_run):
    from qwen3_recipe.quality.classifier import QualityClassifier
    _, run = quality_run
    folder = run / "jobs" / "quality.annotate" / "classifier"
    meta = json.loads((folder / "classifier.json").read_text())
    clf = QualityClassifier.load(folder)
    assert clf.version == meta["version"] and len(meta["version"]) == 12
    assert meta["annotator"].startswith(f"{TEACHER}@") and meta["train_size"] > 0 and meta["type"] == "hashing_ridge"
    versions = query(run, "select distinct classifier_version from annotations")
    assert versions == [(meta["version"],)]
    (view,) = query(run, "select classifier_version, train_size, holdout_size from classifiers")
    assert view == (meta["version"], meta["train_size"], meta["holdout_size"])
    # it learned the annotator: prose scores low, worked arithmetic high (the teacher's habits)
    by_source = dict(query(run, "select source, avg(predicted) from annotations group by source"))
    assert by_source["web"] < by_source["math"]


@pytest.mark.slow
def test_filter_runs_over_the_whole_corpus_with_scores_in_decisions(quality_run):
    _, run = quality_run
    version = json.loads((run / "jobs" / "quality.annotate" / "classifier" / "classifier.json").read_text())["version"]
    curated = jsonl_docs(run / "jobs" / "data.dedup" / "output")
    rows = query(run, "select source, doc_id, decision, reason, details from decisions where job = 'quality.filter'")
    assert sorted(r[1] for r in rows) == sorted(d["id"] for d in curated)  # every document, once
    for source, _, decision, reason, details in rows:
        d = json.loads(details)
        assert d["quality_classifier"] == version
        assert (decision == "kept") == (d["quality_score"] >= 10)
        assert reason == (None if decision == "kept" else "quality_below_threshold")
    decisions = {r[2] for r in rows}
    assert decisions == {"kept", "dropped"}, "the tiny teacher separates prose from arithmetic"
    out = jsonl_docs(run / "jobs" / "quality.filter" / "output")
    assert sorted(d["id"] for d in out) == sorted(r[1] for r in rows if r[2] == "kept")
    assert all(d["metadata"]["quality_classifier"] == version for d in out)
    (counts,) = query(run, "select sum(documents_in), sum(kept), sum(dropped) from step_counts "
                           "where job = 'quality.filter'")
    assert counts == (len(rows), sum(r[2] == "kept" for r in rows), sum(r[2] == "dropped" for r in rows))


@pytest.mark.slow
def test_sql_answers_score_distribution_per_source(quality_run):
    _, run = quality_run
    dist = query(run, "select source, score, count(*) from annotations where score is not null "
                      "group by all order by all")
    assert {s for s, _, _ in dist} <= {"web", "math"} and sum(n for _, _, n in dist) > 0
    predicted = query(run, "select source, score_bucket, documents, dropped from quality_scores order by all")
    assert predicted and sum(r[2] for r in predicted) == query(
        run, "select count(*) from decisions where job = 'quality.filter'")[0][0]


@pytest.mark.slow
def test_classifier_as_a_data_filter(quality_run):
    from datatrove.data import Document

    from qwen3_recipe.data.filters import build_filter
    from qwen3_recipe.recipe.schema.data import QualityClassifier
    _, run = quality_run
    model = run / "jobs" / "quality.annotate" / "classifier" / "model.npz"
    cfg = QualityClassifier(type="quality_classifier", model_path=str(model), threshold=10)
    step = build_filter(cfg, "data.filters.0", REPO)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate([
        "The quiet farmer repaired a wooden bridge near the old harbour and then visited the market.",
        "Question: What is 562 × 9?\n<think>\n2 × 9 = 18, write 8 carry 1.\n</think>\nThe answer is \\boxed{5058}."])]
    results = step.filter_batch(docs)
    scores = [d.metadata["quality_score"] for d in docs]
    # kept exactly when the predicted score reaches the threshold (what the teacher thinks of these
    # two texts is its business: the end-to-end test checks the learned separation)
    assert [r is True for r in results] == [s >= 10 for s in scores]
    assert all(r is True or r == (False, "quality_below_threshold") for r in results)
    missing = QualityClassifier(type="quality_classifier", model_path="nowhere", threshold=1)
    from qwen3_recipe.errors import RecipeError
    with pytest.raises(RecipeError, match="no quality classifier"):
        build_filter(missing, "data.filters.0", REPO)


@pytest.mark.slow
def test_threshold_change_reruns_the_filter_only_and_replaces_its_provenance(quality_run):
    recipe, run = quality_run
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "quality", "--set", "data.quality.threshold=0",
                   timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "skip quality.annotate (cached)" in proc.stdout
    rows = query(run, "select decision, count(*) from decisions where job = 'quality.filter' group by all")
    assert dict(rows) == {"kept": len(jsonl_docs(run / "jobs" / "data.dedup" / "output"))}


def test_annotations_served_by_a_vllm_server_equal_the_in_process_engines(quality_run, tmp_path):
    """data.quality.serving {type: vllm}: the annotator behind datatrove's InferenceRunner and a real
    vLLM server writes the outputs (and scores) vLLM in process writes, document for document."""
    import shutil
    recipe, run = quality_run
    outputs = {}
    for name, serving in (("in_process", "{type: in_process}"), ("served", "{type: vllm}")):
        copy = tmp_path / name
        shutil.copytree(run, copy)
        shutil.rmtree(copy / "jobs" / "quality.annotate" / "cache")  # generated anew (keyed by model, not engine)
        sets = ["--set", "data.quality.engine=vllm", "--set", f"data.quality.serving={serving}"]
        proc = run_cli("run", str(recipe), "-o", str(copy), "--only", "quality.annotate", *sets,
                       cwd=recipe.parent, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outputs[name] = query(copy, "select doc_id, output, score from annotations order by doc_id")
    assert (tmp_path / "served" / "jobs" / "quality.annotate" / "served").is_dir()
    assert len(outputs["served"]) == 40 and outputs["served"] == outputs["in_process"]
