"""Every bad recipe gets located errors (file:line:col key.path: message), never a traceback."""

import re

import pytest

from conftest import REPO, run_cli, write
from qwen3_recipe.errors import RecipeError
from qwen3_recipe.recipe.validate import load_recipe

TINY = REPO / "recipes/tiny.yaml"


def test_four_classic_mistakes_give_four_located_errors_with_suggestions(tmp_path):
    """Acceptance: typo'd key, wrong type, unknown dataset, decreasing seq_len."""
    bad = write(tmp_path / "bad.yaml", f"""
        extends: {TINY}
        name: bad
        data:
          sources:
            web: tiny_webb
        pretrain:
          batch_tokns: 8K
          stages:
            s1_general:
              tokens: lots
            s3_long_context:
              seq_len: 128
    """)
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [l for l in proc.stderr.splitlines() if "bad.yaml:" in l]
    assert len(lines) == 4, proc.stderr
    expect = [
        (5, "data.sources.web: unknown dataset 'tiny_webb'", "did you mean 'tiny_web'?"),
        (7, "pretrain.batch_tokns: unknown key 'batch_tokns'", "did you mean 'batch_tokens'?"),
        (10, "pretrain.stages.s1_general.tokens: 'lots' is not a valid token count", "18T"),
        (12, "pretrain.stages.s3_long_context.seq_len: sequence length decreases from 512", "s2_reasoning"),
    ]
    for line, (lineno, message, hint) in zip(lines, expect):
        assert re.search(rf"bad\.yaml:{lineno}:\d+  ", line), line
        assert message in line and hint in line, line
    assert "4 errors" in proc.stderr


CASES = [
    # (yaml body appended to an `extends: tiny.yaml`, expected line, key path, message fragment, hint)
    ("model: {arch: {num_kv_heads: 3}}", 2, "model.arch.num_kv_heads", "divisible by num_kv_heads", None),
    ("model: {preset: Qwen3-8b}", 2, "model.preset", "unknown preset 'Qwen3-8b'", "did you mean 'Qwen3-8B'?"),
    ("data:\n  mixtures:\n    general: {weights: {web: 0.5, code: 0.2, math: 0.2}}", 4,
     "data.mixtures.general.weights", "must sum to 1", None),
    ("data:\n  mixtures:\n    general: {weights: {webb: 0.6, code: 0.2, math: 0.2}}", 4,
     "data.mixtures.general.weights.webb", "unknown source 'webb'", "did you mean 'web'?"),
    ("data:\n  filters:\n    - {type: gopher_qualty}", 4, "data.filters.0.type", "unknown type 'gopher_qualty'",
     "did you mean 'gopher_quality'?"),
    ("data:\n  decontamination: {benchmarks: [tiny_arth]}", 3, "data.decontamination.benchmarks.0",
     "unknown benchmark 'tiny_arth'", "did you mean 'tiny_arith'?"),
    ("pretrain:\n  stages:\n    s2_reasoning: {mixture: reasonng}", 4, "pretrain.stages.s2_reasoning.mixture",
     "unknown mixture 'reasonng'", "did you mean 'reasoning'?"),
    ("synth:\n  jobs:\n    cot_coldstart: {thinking_budget: 0}", 4, "synth.jobs.cot_coldstart.thinking_budget",
     "greater than 0", None),
    ("synth:\n  jobs:\n    cot_coldstart: {teacher: {stage: s9}}", 4, "synth.jobs.cot_coldstart.teacher.stage",
     "unknown stage 's9'", None),
    ("synth:\n  jobs:\n    cot_coldstart: {keep_per_prompt: 9}", 4, "synth.jobs.cot_coldstart.keep_per_prompt",
     "keeps 9 of only 4", None),
    ("posttrain:\n  stages:\n    extra: {type: distill_onpolicy, teacher: {preset: Qwen3-8B}, prompts: tiny_prompts, steps: 3}",
     4, "posttrain.stages.extra.type", "must come after an off-policy", None),
    ("posttrain:\n  stages:\n    extra: {type: distill_offpolicy, teacher: {arch: {hidden_size: 32, num_layers: 1, "
     "num_heads: 1, num_kv_heads: 1, intermediate_size: 32, vocab_size: 2048}}, prompts: tiny_prompts}",
     4, "posttrain.stages.extra.teacher", "must be larger than the student", None),
    ("evals: {after: [s3_long]}", 2, "evals.after.0", "unknown stage 's3_long'", "did you mean 's3_long_context'?"),
    ("evals: {modes: [thinking]}", 2, "evals.modes.0", "Input should be 'think' or 'no_think'", None),
    ("execution: {executor: k8s}", 2, "execution.executor", "Input should be 'local', 'slurm' or 'ray'", None),
    ("tokenizer: {type: train, vocab_size: 4096}", 2, "tokenizer.vocab_size", "exceeds the model's vocab_size", None),
    ("pretrain:\n  stages:\n    s2_reasoning: {seq_len_start: 2K}", 4, "pretrain.stages.s2_reasoning.seq_len_start",
     "exceeds seq_len", None),
    ("pretrain:\n  stages:\n    s2_reasoning: {seq_len_start: 384}", 4, "pretrain.stages.s2_reasoning.seq_len_start",
     "is not seq_len_start (384) times a power of two", None),
    ("pretrain:\n  stages:\n    s3_long_context:\n      yarn: {factor: 4, original_max_position_embeddings: 1K}", 5,
     "pretrain.stages.s3_long_context.yarn", "YaRN is not applied per pretraining stage",
     "set model.yarn: it goes into the exported config.json, for inference-time context extension"),
    ("outputs: {export_hf: false}", 2, "outputs.export_hf", "every training stage exports HF weights", None),
    ("synth:\n  jobs:\n    fusion_mix:\n      teacher: {stage: s3_long_context, preset: Qwen3-8B}", 5,
     "synth.jobs.fusion_mix.teacher.preset", "a teacher is a stage of this recipe or a preset, not both",
     "a child recipe's mapping merges into its base's: `preset: null` drops an inherited one"),
    ("synth:\n  jobs:\n    fusion_mix: {mode: no_think, thinking_budget: 64}", 4,
     "synth.jobs.fusion_mix.thinking_budget", "a no_think job does not think", None),
    ("seed: [1]", 2, "seed", "valid integer", None),
    ("data: {decontamination: {method: datatrove, action: flag}}", 2, "data.decontamination.action",
     "can only drop", None),
    ("data: {decontamination: {method: token_ngram}}", 2, "data.decontamination.method",
     "token n-grams need an existing tokenizer", None),
    ("outputs: {provenance: {kept_sample_rate: 2}}", 2, "outputs.provenance.kept_sample_rate", "less than or equal to 1", None),
    ("pretrain:\n  stages:\n    s1_general:\n      lr: {decay: constant, decay_fraction: 0.2}", 5,
     "pretrain.stages.s1_general.lr.decay_fraction", "a constant schedule does not decay", None),
    ("pretrain:\n  lr:\n    decay: constant\n    min_lr_ratio: 0.5", 5, "pretrain.lr.min_lr_ratio",
     "min_lr_ratio has no effect", None),
    ("posttrain:\n  stages:\n    reasoning_rl:\n      seq_len: 256", 5, "posttrain.stages.reasoning_rl.seq_len",
     "unknown key 'seq_len'", None),  # RL bounds responses by max_response_tokens: refused, not ignored
    # names become folders of the run directory (safe_paths.py)
    ("data:\n  sources:\n    ../up: tiny_web", 4, "data.sources.../up", "'../up' cannot be a name", None),
    ("data:\n  mixtures:\n    a/b: {weights: {web: 1.0}}", 4, "data.mixtures.a/b", "'a/b' cannot be a name", None),
    ('pretrain:\n  stages:\n    "s\\0x": {tokens: 10K, seq_len: 512, mixture: general}', 4,
     "pretrain.stages.s\x00x", "'s\\x00x' cannot be a name", None),
    ("posttrain:\n  stages:\n    ..: {type: sft}", 4, "posttrain.stages...", "'..' cannot be a name", None),
    ("synth:\n  jobs:\n    /etc: {mode: think}", 4, "synth.jobs./etc", "'/etc' cannot be a name", None),
]


@pytest.mark.parametrize("body,line,path,message,hint", CASES, ids=[c[2] for c in CASES])
def test_error_is_located_with_key_path_and_suggestion(tmp_path, body, line, path, message, hint):
    bad = tmp_path / "child.yaml"
    bad.write_text(f"extends: {TINY}\n{body}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(bad)
    found = [p for p in err.value.problems if p.path == path]
    assert found, err.value.render()
    problem = found[0]
    assert problem.loc is not None and problem.loc.file.endswith("child.yaml"), problem.render()
    assert problem.loc.line == line, problem.render()
    assert message in problem.message, problem.render()
    if hint:
        assert problem.hint == hint


def test_error_in_a_base_recipe_names_the_base_file(tmp_path):
    write(tmp_path / "base.yaml", f"""
        extends: {TINY}
        seed: many
    """)
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nname: child\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(child)
    [problem] = err.value.problems
    assert problem.loc.file.endswith("base.yaml") and problem.loc.line == 2 and problem.path == "seed"


def test_bad_catalog_entry_is_located_in_its_own_file(tmp_path):
    (tmp_path / "datasets_spec").mkdir()
    write(tmp_path / "datasets_spec" / "x.yaml", """
        good: {path: data.jsonl, format: jsonl}
        bad: {hf_id: a/b, formatt: hf}
    """)
    recipe = write(tmp_path / "r.yaml", f"extends: {TINY}\ncatalog: {{datasets: datasets_spec}}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe)
    text = err.value.render()
    assert "x.yaml:2:" in text and "bad.formatt: unknown key 'formatt'" in text and "did you mean 'format'?" in text


def test_cli_errors_have_no_traceback_unless_debug(tmp_path):
    bad = write(tmp_path / "bad.yaml", f"extends: {TINY}\nseed: x\n")
    proc = run_cli("plan", str(bad))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "bad.yaml:2:7  seed:" in proc.stderr
    proc = run_cli("--debug", "plan", str(bad))
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = run_cli("validate", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 1 and "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_local_data_file_is_located(tmp_path):
    import shutil
    for name in ("recipes", "datasets_spec", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "datasets_spec/data/tiny_code.jsonl").unlink()
    with pytest.raises(RecipeError) as err:
        load_recipe(tmp_path / "recipes/tiny.yaml")
    [problem] = err.value.problems
    assert problem.path == "data.sources.code" and problem.loc.line == 30
    assert "points at a missing file" in problem.message and "tiny.yaml:" in problem.message


def _with_evals(tmp_path, entries: str, evals: str):
    """The tiny recipe with a catalog of its own benchmarks plus `entries`, evaluating `evals`."""
    import yaml
    folder = tmp_path / "evals"
    folder.mkdir()
    tiny = yaml.safe_load((REPO / "evals" / "tiny.yaml").read_text())
    for entry in tiny.values():
        entry["path"] = str(REPO / "evals" / entry["path"])
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    write(folder / "more.yaml", entries)
    (tmp_path / "rows.jsonl").write_text('{"q": "Write add.", "solution": "def add(a, b): return a + b"}\n')
    return write(tmp_path / "r.yaml", f"extends: {TINY}\ncatalog: {{evals: evals}}\nevals:\n  benchmarks: {evals}\n")


def test_unscorable_benchmarks_are_located_errors(tmp_path):
    """A benchmark nothing can score fails `validate` at the recipe line naming it, with the
    catalog entry's location: no silent skip at run time."""
    recipe = _with_evals(tmp_path, """
        add_code: {path: ../rows.jsonl, question_field: q, answer_field: solution, verifier: code}
        mcq: {path: ../rows.jsonl, question_field: q, answer_field: solution, verifier: multiple_choice}
        chat: {path: ../rows.jsonl, question_field: q, answer_field: null, verifier: judge}
        rows_lack: {path: ../rows.jsonl, question_field: prompt, answer_field: solution, verifier: exact}
    """, "[tiny_sums, add_code, mcq, chat, rows_lack]")
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe)
    text = err.value.render()
    assert re.search(r"r\.yaml:\d+:\d+\s+evals\.benchmarks\.1: benchmark 'add_code' \(.*more\.yaml:1:1\) "
                     r"cannot be scored: a 'code' benchmark needs `tests_field`", text), text
    assert "evals.benchmarks.2: benchmark 'mcq'" in text and "needs `choices_field`" in text
    assert "evals.benchmarks.3: benchmark 'chat'" in text and "declare `evals.judge`" in text
    assert "evals.benchmarks.4: benchmark 'rows_lack'" in text and "rows.jsonl row 1: no column 'prompt'" in text
    assert "tiny_sums" not in text


def test_code_verifier_needs_prompts_with_tests(tmp_path):
    recipe = write(tmp_path / "r.yaml", f"""
        extends: {TINY}
        synth:
          jobs:
            cot_coldstart:
              verifier: {{type: code}}
        """)
    with pytest.raises(RecipeError) as err:
        load_recipe(recipe)
    assert re.search(r"synth\.jobs\.cot_coldstart\.verifier: a code verifier runs the prompts' tests, "
                     r"but dataset '\w+' \(.*\) declares no `tests_field`", err.value.render())
