"""`plan` catches decontamination settings that cannot work (issue 15): token 8-grams of the tiny
tokenizer (~550 tokens, ~2 words per 8 tokens) flag a third of the tiny recipe's clean sources,
which word 13-grams do not; plan warns naming the setting and where it was set. A distinctive n
and the word method stay quiet."""

from __future__ import annotations

import json

from conftest import run_cli

TOKENS = ["--set", "tokenizer={type: pretrained, path: tests/assets/tiny-teacher}",
          "--set", "data.decontamination.method=token_ngram"]


def _plan(tmp_path, *sets: str):
    return run_cli("plan", "recipes/tiny.yaml", "-o", str(tmp_path / "run"), *sets)


def test_plan_warns_when_token_ngrams_would_flag_clean_text(tmp_path):
    proc = _plan(tmp_path, *TOKENS, "--set", "data.decontamination.n=8")
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stdout.splitlines() if line.startswith("warning ")]
    assert len(warning) == 1, proc.stdout
    assert warning[0].startswith("warning --set data.decontamination.n=8: data.decontamination.n: token 8-grams")
    flagged, sampled = (int(x) for x in warning[0].split("would flag ")[1].split(" sampled")[0].split(" of "))
    assert sampled >= 300 and flagged / sampled > 0.2, warning[0]  # word 13-grams flag next to none of them
    assert "method word_ngram" in warning[0]
    view = json.loads(_plan(tmp_path, *TOKENS, "--set", "data.decontamination.n=8", "--format", "json").stdout)
    assert view["warnings"] == [warning[0].removeprefix("warning ")]


def test_a_distinctive_setting_plans_without_a_warning(tmp_path):
    for sets in ((*TOKENS, "--set", "data.decontamination.n=30"), ()):  # long token n-grams; the default words
        proc = _plan(tmp_path, *sets)
        assert proc.returncode == 0 and "warning" not in proc.stdout, proc.stdout
