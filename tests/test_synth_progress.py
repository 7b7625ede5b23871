"""The synth progress bar: samples/s and the acceptance so far as batches are judged."""

from __future__ import annotations

from qwen3_recipe.progress import acceptance_text, synth_progress


def test_acceptance_text():
    assert acceptance_text(0, None) == ""
    assert acceptance_text(0, 0) == "accepted 0/0"
    assert acceptance_text(1200, 300) == "accepted 300/1,200 (25%)"


def test_bar_shows_rate_and_acceptance(capsys):
    with synth_progress("synth.x", 20, done=4, kept=1) as progress:   # 4 samples cached, 1 kept
        progress(8, 3)
        progress(8, 2)
    out = capsys.readouterr().out
    assert "20/20" in out and "samples/s" in out and "accepted 6/20 (30%)" in out


def test_bar_without_acceptance(capsys):
    with synth_progress("annotate", 3) as progress:   # the annotation job counts only
        progress(3)
    out = capsys.readouterr().out
    assert "3/3" in out and "accepted" not in out
