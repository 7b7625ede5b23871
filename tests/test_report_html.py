"""`qwen3-recipe report html`: one self-contained page per run, every section always present.

Fast: a compiled tiny run with provenance shards and metrics written here (every section has data),
and the same run before anything ran (every section says which command fills it). Slow: the tiny
recipe's real data jobs. Headless Chromium (Debian's `chromium`; skipped when absent) renders
the pages: no console message, charts in the rendered DOM, a screenshot kept under tmp/."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from qwen3_recipe.provenance.database import build_database
from qwen3_recipe.provenance.recorder import ShardRecorder
from qwen3_recipe.report import SECTIONS, build_html

TITLES = ["Plan", "Data funnel per source", "LLM labels", "Mixture: declared vs realised", "Curriculum",
          "Loss per stage",
          "Reward and KL (RL and distillation)", "Eval accuracy vs thinking budget", "Contamination"]
SCREENSHOTS = REPO / "tmp" / "report-screenshots"  # git-ignored; kept after the test's tmp dirs go


def sections(html: str) -> dict[str, str]:
    parts = re.split(r'<section id="([a-z]+)"', html)[1:]
    return dict(zip(parts[::2], parts[1::2]))


def assert_self_contained(html: str) -> None:
    assert "<script" not in html and "<link" not in html and "<img" not in html and "@import" not in html
    assert all(v.startswith("#") for v in re.findall(r'\b(?:href|src)="([^"]*)"', html))
    assert set(re.findall(r"url\(([^)]*)\)", html)) <= {f"#{i}" for i in re.findall(r'\bid="([^"]+)"', html)}
    assert "http://" not in html and "https://" not in html
    assert "could not be built" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids across inline SVGs"


def compiled(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    proc = run_cli("compile", "recipes/tiny.yaml", "-o", str(run))
    assert proc.returncode == 0, proc.stderr
    return run


def fill(run: Path) -> None:
    """Provenance shards and metrics for every section, shaped like the real jobs write them."""
    manifest = json.loads((run / "manifest.json").read_text())
    for job in manifest["jobs"]:
        (run / "jobs" / job["name"] / "done.json").write_text(json.dumps({"fingerprint": job["fingerprint"]}))

    def rec(job: str) -> ShardRecorder:
        return ShardRecorder(run / "jobs" / job / "provenance", job, "s0", 0)

    sources = {"web": 300, "code": 200, "math": 250}
    for source, n in sources.items():
        r = rec(f"data.{source}")
        for i in range(n):
            r.add("documents", source=source, doc_id=f"{source}/{i}", file="f", offset=i, bytes=400 + i, text_hash="h")
        dropped = {"length": range(0, n // 10), "decontamination": range(n // 10, n // 10 + (20 if source == "math" else 0))}
        left = n
        for index, (step, ids) in enumerate([("read", range(0))] + list(dropped.items())):
            r.add("step_counts", step_index=index, step=step, source=source, documents_in=left, kept=left - len(ids),
                  dropped=len(ids), modified=0)
            for i in ids:
                r.add("decisions", step_index=index, step=step, source=source, doc_id=f"{source}/{i}", decision="dropped",
                      reason="too_short" if step == "length" else "contaminated")
                if step == "decontamination":
                    r.add("contamination", source=source, doc_id=f"{source}/{i}", benchmark="tiny_arith",
                          item_id=f"tiny_arith-{i % 7}", ngram="a box holds 26 marbles how many", position=3,
                          action="dropped")
            left -= len(ids)
        r.close()
    r = rec("quality.label")  # the planted source: 60 documents, levels 0-2, the classifier wrong on 6
    for i in range(60):
        r.add("labels", source="worked", doc_id=f"worked/{i}", dimension="worked",
              score=i % 3 + (0.6 if i < 6 else 0.1),
              classifier_version="c1", reference=str(i % 3))
    r.close()
    r = rec("quality.annotate")
    for i in range(20):
        r.add("annotations", source="worked", doc_id=f"worked/{i}", dimension="worked", annotator="a", score=i % 3,
              parsed="boxed", split="holdout" if i < 5 else "train", predicted=i % 3, classifier_version="c1")
    r.close()
    r = rec("mix.s1_general")
    for source, share in {"web": 0.6, "code": 0.2, "math": 0.2}.items():
        r.add("mixture_targets", stage="s1_general", source=source, declared_share=share, realized_share=share * 1.01,
              budget_tokens=int(share * 1e6), shortfall_tokens=0)
        for i in range(sources[source] // 10 + 20, sources[source]):
            r.add("mixture", stage="s1_general", source=source, doc_id=f"{source}/{i}", tokens=100, repetitions=2)
    r.close()
    for stage, kind in (("reasoning_rl", "reasoning_rl"), ("general_rl", "general_rl")):
        r = rec(f"posttrain.{stage}")
        for step in range(1, 11):
            for metric, value in {"reward_mean": 0.4 + step / 40, "accuracy": 0.3 + step / 40, "kl": step / 1e3,
                                  "loss": 1 / step}.items():
                r.add("train_steps", stage=stage, kind=kind, step=step, metric=metric, value=value)
        r.add("train_steps", stage=stage, kind=kind, step=0, metric="heldout_reward", value=0.4)
        r.add("train_steps", stage=stage, kind=kind, step=10, metric="heldout_reward", value=0.6)
        r.close()
    r = rec("eval.general_rl")
    for stage in ("s3_long_context", "general_rl"):
        for mode, budget in [("think", 16), ("think", 64), ("think", 192), ("think", None), ("no_think", None)]:
            for item in range(10):
                r.add("eval_samples", stage=stage, benchmark="tiny_arith", item_id=f"i{item}", mode=mode,
                      thinking_budget=budget, sample=0, correct=item < (budget or 256) / 32, verdict="v", tokens=50,
                      thinking_tokens=budget or 0, budget_cut=False, text="t")
    r.close()
    for job in manifest["jobs"]:
        if job["kind"] in ("pretrain", "sft", "fusion", "reasoning_rl", "general_rl"):
            key = "loss" if job["kind"].endswith("_rl") else "loss_metrics/global_avg_loss"
            rows = [{"step": s, key: 8 * math.exp(-s / 20) + 1} for s in range(1, 31)]
            if job["name"] == "pretrain.s2_reasoning":  # what the loader fed: 10 steps at 256, then 512
                rows = [r | {"seq_len": 256 if r["step"] <= 10 else 512, "tokens": 1536} for r in rows]
            (run / "jobs" / job["name"] / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 31, "lo')
    build_database(run)


@pytest.fixture
def full_run(tmp_path) -> Path:
    run = compiled(tmp_path)
    fill(run)
    return run


def test_every_section_has_its_charts_when_the_run_has_data(full_run):
    html = build_html(full_run)
    assert_self_contained(html)
    found = sections(html)
    assert list(found) == list(SECTIONS)
    for (sid, body), title in zip(found.items(), TITLES):
        assert f"</span>{title}</h2>" in body, sid
        assert "no data yet" not in body, sid
    charts = {sid: body.count('<svg class="chart"') for sid, body in found.items()}
    jobs = len(json.loads((full_run / "manifest.json").read_text())["jobs"])
    assert found["plan"].count('<g class="job done"') == jobs and 'class="dag"' in found["plan"]
    assert charts == {"plan": 0, "funnel": 1, "labels": 0, "mixture": 1, "curriculum": 1, "loss": 2, "rl": 2, "evals": 1,
                      "contamination": 0}
    assert "≈" in found["funnel"] and "tiny_arith" in found["contamination"] and "passes" in found["contamination"]
    labels = re.sub(r"<[^>]+>", " ", found["labels"])
    assert re.search(r"worked\s+worked\s+1\.9[78]\s+60\s+20\s+33\.33", labels)  # 7 thresholds from 0.1 to 2.6: 6th keeps 20 of 60
    assert re.search(r"worked\s+worked\s+60\s+90(\.0)?\s+33\.33", labels)  # agreement 54/60; majority 1/3
    assert "1,000,000" in found["curriculum"] and "256 → 512" in found["curriculum"]  # tokens, seq_len ramp
    assert "256: 15.4K, 512: 30.7K (trained)" in found["curriculum"]  # what was fed, not what was declared
    assert "s3_long_context · think" in found["evals"] and "heldout_reward" in found["rl"]


def test_a_run_with_nothing_run_yet_says_what_fills_each_section(tmp_path):
    run = compiled(tmp_path)
    proc = run_cli("report", "html", str(run))
    assert proc.returncode == 0, proc.stderr
    html = (run / "report.html").read_text()
    assert_self_contained(html)
    found = sections(html)
    assert list(found) == list(SECTIONS)
    for sid in ("funnel", "labels", "mixture", "loss", "rl", "evals", "contamination"):
        assert "no data yet: run <code>qwen3-recipe run recipes/tiny.yaml -o " in found[sid], sid
    assert "--only evals" in found["evals"] and "--only data" in found["funnel"]
    jobs = len(json.loads((run / "manifest.json").read_text())["jobs"])
    assert found["plan"].count('<g class="job to-run"') == jobs and '<svg class="chart"' in found["curriculum"]
    assert "256: 75.3K, 512: 75.3K (compiled)" in found["curriculum"]  # the lowered schedule, before it runs
    out = tmp_path / "elsewhere" / "page.html"
    assert run_cli("report", "html", str(run), "-o", str(out)).returncode == 0 and out.exists()
    assert run_cli("report", "funnel", str(run), "-o", str(out)).returncode == 2  # -o is for html only


def test_a_broken_file_costs_one_section_not_the_page(full_run, capsys):
    job = full_run / "jobs/pretrain.s1_general/job.json"
    job.write_text(json.dumps({**json.loads(job.read_text()), "config": {"stage": "not a mapping"}}))
    (full_run / "jobs/posttrain.cold_start/metrics.jsonl").write_text('{"step": 1, "loss_metrics/glo')
    found = sections(build_html(full_run))
    assert list(found) == list(SECTIONS)
    assert "could not be built: AttributeError" in found["curriculum"]
    assert "report section 'curriculum' failed" in capsys.readouterr().err
    assert '<svg class="chart"' in found["rl"] and '<svg class="chart"' in found["evals"]


def chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))),
                None)


def render(browser: str, page: Path, png: Path, height: int = 10000) -> tuple[list[str], str]:
    """Console messages (Chromium logs each one as a CONSOLE line on stderr) and the rendered DOM."""
    proc = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--enable-logging=stderr",
                           "--v=0", f"--user-data-dir={png.parent / 'chromium-profile'}", "--dump-dom",
                           f"--screenshot={png}", f"--window-size=1400,{height}", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and png.exists(), proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line], proc.stdout


def check_in_browser(page: Path, tmp_path: Path, name: str, capsys) -> None:
    from PIL import Image
    browser = chromium()
    if browser is None:
        pytest.skip("no headless browser: `apt-get install chromium` (Debian; .ci/run does it)")
    bad = tmp_path / "bad.html"  # the check itself: a console error must be seen
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("boom")</script></body></html>')
    assert any('"boom"' in line for line in render(browser, bad, tmp_path / "bad.png", 400)[0])
    png = tmp_path / f"{name}.png"
    console, dom = render(browser, page, png)
    assert console == [], console
    assert all(f'id="{sid}"' in dom for sid in SECTIONS) and dom.count('<svg class="chart"') >= 1
    image = Image.open(png).convert("RGB")
    assert image.size == (1400, 10000)
    colours = {colour for _, colour in image.getcolors(1 << 22) or []}
    assert len(colours) > 200 and (0x4C, 0x72, 0xB0) in colours  # not blank; the charts' blue was painted
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    bottom = image.convert("L").point(lambda v: 255 if v < 250 else 0).getbbox()[3]  # the page's end
    image.crop((0, 0, 1400, min(bottom + 24, image.height))).save(SCREENSHOTS / png.name)
    with capsys.disabled():
        print(f"\n  report screenshot: {SCREENSHOTS / png.name}")


def test_the_page_renders_in_headless_chromium(full_run, tmp_path, capsys):
    page = full_run / "report.html"
    assert run_cli("report", "html", str(full_run)).returncode == 0
    check_in_browser(page, tmp_path, "report-all-sections", capsys)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("tiny") / "run"
    proc = run_cli("run", "recipes/tiny.yaml", "-o", str(run), "--only", "data")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run


@pytest.mark.slow
def test_the_tiny_recipes_real_data_run(tiny_data, tmp_path, capsys):
    proc = run_cli("report", "html", str(tiny_data))
    assert proc.returncode == 0, proc.stderr
    html = (tiny_data / "report.html").read_text()
    assert_self_contained(html)
    found = sections(html)
    for sid in ("funnel", "mixture", "curriculum"):
        assert '<svg class="chart"' in found[sid] and "no data yet" not in found[sid], sid
    assert "contaminated" in found["funnel"] and "tiny_arith" in found["contamination"]
    for sid in ("loss", "rl", "evals"):
        assert "no data yet: run" in found[sid], sid
    check_in_browser(tiny_data / "report.html", tmp_path, "report-tiny-data", capsys)
