"""Language groups (issue 17.4): `data.languages` lowers a catalog family into one source per
language with a language-id step each, spreads the mixture weight naming the group by the declared
rule, locates every mistake, and `plan` shows the shares; the real run drops what is not the
source's language (datatrove + lingua) and the mixture realises the spread weights."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, query, run_cli, write
from qwen3_recipe.recipe.languages import language_shares
from qwen3_recipe.recipe.schema.languages import LanguageShares
from qwen3_recipe.recipe.validate import load_recipe

TINY = REPO / "recipes" / "tiny.yaml"
GROUP = """
    extends: {tiny}
    name: ml
    data:
      languages:
        ml:
          family: tiny_lang
          shares: {{temperature: 0.5, floor: 0.1}}
          language_id: {{backend: lingua}}
      mixtures:
        general: {{weights: {{web: 0.3, code: 0.2, math: 0.48, ml: 0.02}}}}  # the tiny files hold ~1K tokens each
"""


def test_shares_follow_tokens_to_the_temperature_with_a_floor():
    tokens = {"en": 9_000, "de": 900, "sw": 9}
    flat = language_shares(tokens, LanguageShares(temperature=1.0))
    assert flat == pytest.approx({"en": 9000 / 9909, "de": 900 / 9909, "sw": 9 / 9909})
    warm = language_shares(tokens, LanguageShares(temperature=0.5))
    assert warm["sw"] > flat["sw"] and warm["en"] < flat["en"] and sum(warm.values()) == pytest.approx(1)
    assert warm["en"] / warm["de"] == pytest.approx((9000 / 900) ** 0.5)
    floored = language_shares(tokens, LanguageShares(temperature=1.0, floor=0.05))
    assert floored["sw"] == pytest.approx(0.05) and floored["de"] >= 0.05 and sum(floored.values()) == pytest.approx(1)
    assert floored["en"] / floored["de"] == pytest.approx(10)  # the rest keeps its proportions
    assert language_shares(tokens, LanguageShares(rule="uniform")) == pytest.approx({c: 1 / 3 for c in tokens})


def test_a_group_becomes_sources_filters_and_spread_weights(tmp_path):
    recipe = write(tmp_path / "ml.yaml", GROUP.format(tiny=TINY))
    loaded = load_recipe(recipe)
    data = loaded.recipe.data
    codes = ["en", "de", "fr", "es"]
    assert [s for s in data.sources if s.startswith("ml_")] == [f"ml_{c}" for c in codes]
    assert data.sources["ml_de"].dataset == "tiny_lang.de"
    assert loaded.catalogs.datasets["tiny_lang.de"].spec.languages == ["de"]
    assert loaded.catalogs.datasets["tiny_lang.de"].spec.tokens == int(535 * 1.5)  # words x tokens_per_word
    lid = {f.name: f for f in data.filters if f.type == "language"}
    assert set(lid) == {f"language_id_{c}" for c in codes}
    assert lid["language_id_fr"].sources == ["ml_fr"] and lid["language_id_fr"].languages == ["fr"]
    shares = loaded.languages["ml"].shares
    weights = data.mixtures["general"].weights
    assert {c: weights[f"ml_{c}"] for c in codes} == pytest.approx({c: 0.02 * shares[c] for c in codes})
    assert sum(weights.values()) == pytest.approx(1) and "ml" not in weights
    proc = run_cli("plan", str(recipe), "-o", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("data.languages.ml:"))
    assert "4 languages of tiny_lang" in line and "shares by tokens^0.5, floor 10.00%" in line
    view = json.loads(run_cli("plan", str(recipe), "-o", str(tmp_path / "run"), "--format", "json").stdout)
    assert view["languages"]["ml"]["shares"] == pytest.approx(shares)


@pytest.mark.parametrize("edit, line, message", [
    ("family: tiny_lng", 6, "data.languages.ml.family: unknown family 'tiny_lng' (did you mean 'tiny_lang'?)"),
    ("family: tiny_web", 6, "'tiny_web' is a dataset, not a family"),
    ("languages: [en, xx]", 7, "data.languages.ml.languages.1: 'xx' is not a member of family 'tiny_lang'"),
    ("language_id: {threshold: 0.5}", 7, "set data.languages.ml.language_id.model_path (lid.176.bin"),
    ("shares: {floor: 0.3}", 8, "a floor of 0.3 for 4 languages is more than the whole group"),
    ("shares: {rule: tokenz}", 8, "data.languages.ml.shares.rule"),
    ("languages: [en, no]", 7, "data.languages.ml.languages.1: YAML read this code as false: quote it"),
])
def test_group_mistakes_are_located(tmp_path, edit, line, message):
    base = {"family": "family: tiny_lang", "languages": "", "language_id": "language_id: {backend: lingua}",
            "shares": ""}
    key = edit.split(":")[0]
    base[key] = edit
    body = "\n".join(f"              {v}" for v in base.values() if v)
    recipe = write(tmp_path / "r.yaml", f"""
        extends: {TINY}
        name: r
        data:
          languages:
            ml:
{body}
    """)
    proc = run_cli("validate", str(recipe))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert re.search(rf"r\.yaml:{line}:\d+ .*{re.escape(message)}", proc.stderr), proc.stderr


def test_a_missing_language_id_model_names_the_group_setting(tmp_path):
    recipe = write(tmp_path / "r.yaml", GROUP.format(tiny=TINY).replace(
        "language_id: {backend: lingua}", "language_id: {model_path: missing/lid.176.bin}"))
    proc = run_cli("run", str(recipe), "-o", str(tmp_path / "run"), "--only", "data.ml_de")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "data.languages.ml.language_id.model_path" in proc.stderr + proc.stdout
    assert "r.yaml:8:" in proc.stderr + proc.stdout and "nothing is downloaded" in proc.stderr + proc.stdout


@pytest.mark.slow
def test_language_id_drops_the_planted_documents_and_the_mixture_spreads_the_group(tmp_path):
    recipe = write(tmp_path / "ml.yaml", GROUP.format(tiny=TINY))
    run = tmp_path / "run"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "mix.s1_general", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for code in ("en", "de", "fr", "es"):
        rows = query(run, "select doc_id, decision, reason from decisions "
                          f"where source = 'ml_{code}' and step = 'language_id_{code}'")
        assert len(rows) == 14, rows
        for doc, decision, reason in rows:
            planted = re.fullmatch(rf"ml_{code}/{code}-planted-(\w+)-\d", doc)
            assert (decision == "dropped") == bool(planted), (doc, decision, reason)
            if planted:
                assert reason == f"language_{planted.group(1)}"
    loaded = load_recipe(recipe)
    declared = loaded.recipe.data.mixtures["general"].weights
    targets = dict(query(run, "select source, realized_share from mixture_targets where stage = 's1_general'"))
    for code in ("en", "de", "fr", "es"):
        assert targets[f"ml_{code}"] == pytest.approx(declared[f"ml_{code}"], abs=0.01)


def test_the_flagship_recipe_declares_forty_five_languages_and_llm_labels(tmp_path):
    loaded = load_recipe(REPO / "recipes" / "qwen3.yaml")
    group = loaded.languages["multilingual"]
    assert group.family == "fineweb-2" and len(group.shares) == 43 and {"zh", "ja"}.isdisjoint(group.shares)
    assert loaded.recipe.data.sources["zh"].dataset == "fineweb-2.zh"  # with a weight of its own
    # equal shares: the catalog does not hold FineWeb-2's per-language sizes yet (see the recipe)
    assert group.shares == pytest.approx({c: 1 / len(group.shares) for c in group.shares})
    assert all(loaded.catalogs.datasets[f"fineweb-2.{c}"].spec.config for c in group.shares)
    quality = loaded.recipe.data.quality
    assert quality is not None and {"edu", "domain", "safety"} <= set(quality.dimensions)
    proc = run_cli("plan", str(REPO / "recipes" / "qwen3.yaml"), "-o", str(tmp_path / "run"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    names = {j["name"] for j in json.loads(proc.stdout)["jobs"]}
    assert {"quality.annotate", "quality.label"} <= names
    assert {f"data.multilingual_{c}" for c in group.shares} <= names
    text = run_cli("plan", str(REPO / "recipes" / "qwen3.yaml"), "-o", str(tmp_path / "run")).stdout
    assert re.search(rf"data\.languages\.multilingual: {len(group.shares)} languages of fineweb-2, shares "
                     r"equal", text), text[-3000:]


def test_lingua_codes_and_group_names_are_checked(tmp_path):
    family = write(tmp_path / "datasets_spec" / "fam.yaml", """
        fam:
          format: jsonl
          family:
            "no": {path: no.jsonl, words: 10}
            de: {path: de.jsonl, words: 10}
    """)
    for code in ("no", "de"):
        (family.parent / f"{code}.jsonl").write_text('{"id": "1", "text": "x"}\n')
    recipe = write(tmp_path / "r.yaml", f"""
        name: r
        catalog: {{datasets: datasets_spec, evals: {REPO / 'evals'}}}
        data:
          sources: {{multilingual: fam.de}}
          languages:
            multilingual: {{family: fam, languages: [de, "no"], language_id: {{backend: lingua}}}}
    """)
    proc = run_cli("validate", str(recipe))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert re.search(r"r\.yaml:6:\d+ +data\.languages\.multilingual\.languages\.1: lingua has no model for 'no'",
                     proc.stderr), proc.stderr
    assert "the group 'multilingual' has the name of a source" in proc.stderr


def test_an_empty_synth_dataset_supplies_nothing(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from qwen3_recipe.compiler.synth_supply import synth_chars
    (tmp_path / "dataset").mkdir()
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), tmp_path / "dataset" / "train.parquet")
    assert synth_chars(tmp_path) == 0
