"""LLM labels that mean something (issue 17.5): the demo's planted-quality corpus
(datasets_spec/data/tiny_worked.jsonl: every document worked, answers-only or garbled, its level
in the `quality` field) labelled exactly as recipes/tiny.yaml declares it - its rubric, the shipped
annotator (tests/assets/tiny-annotator) through vLLM, a classifier trained on the annotations,
the label filter - and the labels measured against the planted truth in SQL over provenance."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml
from conftest import REPO, query, run_cli
from corpora import write_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    tiny = yaml.safe_load((REPO / "recipes" / "tiny.yaml").read_text())
    quality = tiny["data"]["quality"]
    quality["annotator"]["path"] = str(REPO / quality["annotator"]["path"])
    label_filter = next(f for f in tiny["data"]["filters"] if f["type"] == "label")
    recipe, _ = write_project(root, extra_data="  quality: " + json.dumps(quality))
    corpus = REPO / "datasets_spec" / "data" / "tiny_worked.jsonl"
    (root / "datasets_spec" / "worked.jsonl").write_text(corpus.read_text())
    (root / "datasets_spec" / "worked.yaml").write_text(
        "worked:\n  path: worked.jsonl\n  format: jsonl\n  text_field: text\n  id_field: id\n  domain: math\n")
    text = recipe.read_text().replace("sources: {web: web}", "sources: {worked: worked}")
    text = text.replace("    - {type: gopher_repetition}\n    - {type: gopher_quality}\n",
                        f"    - {json.dumps(label_filter)}\n").replace("min_chars: 100", "min_chars: 20")
    recipe.write_text(text)
    run = root / "run"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "quality", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run, proc.stdout, [json.loads(line) for line in corpus.read_text().splitlines()]


def test_the_annotator_judges_the_planted_levels(planted_run, summary):
    run, _, _ = planted_run
    rows = query(run, "select reference, score from annotations where dimension = 'worked'")
    assert len(rows) >= 80 and all(r is not None for r, _ in rows)
    right = sum(s is not None and int(s) == int(r) for r, s in rows)
    summary.append(f"planted quality: the annotator gives the planted level to {right}/{len(rows)} sampled documents")
    assert right / len(rows) >= 0.85, Counter((r, s) for r, s in rows)


def test_the_classifier_agrees_with_the_planted_truth_far_above_chance(planted_run, summary):
    run, stdout, corpus = planted_run
    (source, dimension, documents, agreement, majority), = query(
        run, "select source, dimension, documents, agreement, majority_share from label_agreement")
    assert (source, dimension, documents) == ("worked", "worked", len(corpus))
    assert majority == pytest.approx(max(Counter(d["quality"] for d in corpus).values()) / len(corpus), abs=1e-3)
    summary.append(f"planted quality: the classifier agrees with the planted level on {agreement:.1%} of "
                   f"{documents} documents (the most common level alone: {majority:.1%})")
    assert agreement >= 0.8 and agreement > majority + 0.4
    # what the job printed is what SQL says
    assert f"agrees with `quality` on {agreement:.1%} of {documents:,} documents" in stdout, stdout[-2000:]
    # each label row carries the truth of its own document
    truth = {f"worked/{d['id']}": str(d["quality"]) for d in corpus}
    rows = query(run, "select doc_id, reference from labels where dimension = 'worked'")
    assert {doc: ref for doc, ref in rows} == truth


def test_the_label_filter_drops_the_garbled_documents(planted_run):
    run, _, corpus = planted_run
    rows = query(run, """select l.reference, d.decision, count(*) from labels l join decisions d
                         on d.doc_id = l.doc_id and d.job = l.job and d.step like 'label_worked%'
                         where l.dimension = 'worked' and d.decision = 'dropped' group by all""")
    counts = {(ref, decision): n for ref, decision, n in rows}
    garbled = sum(d["quality"] == 0 for d in corpus)
    assert counts.get(("0", "dropped"), 0) >= 0.85 * garbled, counts
    assert counts.get(("1", "dropped"), 0) + counts.get(("2", "dropped"), 0) <= 0.02 * (len(corpus) - garbled), counts
