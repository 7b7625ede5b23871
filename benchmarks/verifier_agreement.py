"""Agreement of our verifiers with the reference harnesses' metrics on a fixed response set.

For MATH-500, GPQA-Diamond, MMLU-Redux, IFEval and HumanEval+, items are built from rows shaped like
the hub datasets' (tests/benchmark_rows/ plus the extra rows of agreement_responses.py) exactly as
the eval job builds them (catalog entries from evals/ -> `benchmark_item` -> `build_verifier`), and
every response of agreement_responses.py is scored by ours and by the reference metric, which runs
in its own virtualenv (agreement_reference.py, JSON in and out) so the project's stays clean:

  MATH-500     lighteval `pass_at_k_math` (extractive match)   | also lm-eval minerva_math math_verify
  GPQA         lighteval `gpqa_instruct_pass_at_k`             | also lm-eval flexible-extract + exact_match
  MMLU-Redux   lighteval `pass_at_k_letters`                   | also lm-eval's `([ABCD])` regex (known-bad)
  IFEval       lm-eval `process_results` (prompt/inst, strict/loose: all four must agree)
  HumanEval+   lm-eval's program (prompt + completion + test + check(entry_point)) under code_eval's rules

Setup (once): .venv/bin/python benchmarks/verifier_agreement.py --setup   (pip, PyPI pins below)
Run:          .venv/bin/python benchmarks/verifier_agreement.py [--out agreement.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

import agreement_responses as R  # noqa: E402

VENVS = {"lm_eval": Path(os.environ.get("AGREEMENT_LM_EVAL_VENV", "/work/ref-venv")),
         "lighteval": Path(os.environ.get("AGREEMENT_LIGHTEVAL_VENV", "/work/ref-venv-lighteval"))}
PINS = {  # torch first: pip takes the CPU wheel on disk and nothing later pulls a CUDA build
    "lm_eval": ["lm-eval[math,ifeval]==0.4.13", "math-verify==0.9.0", "latex2sympy2_extended==1.11.0",
                "antlr4-python3-runtime==4.11.0", "sympy==1.14.0", "nltk==3.10.4", "langdetect==1.0.9"],
    "lighteval": ["lighteval[math]==0.13.0", "latex2sympy2_extended==1.0.6", "antlr4-python3-runtime==4.13.2",
                  "sympy==1.14.0"]}
SHOWN = {"lm_eval": ["lm_eval", "torch", "math-verify", "latex2sympy2_extended", "antlr4-python3-runtime", "sympy",
                     "nltk", "langdetect"],
         "lighteval": ["lighteval", "torch", "latex2sympy2_extended", "antlr4-python3-runtime", "sympy"]}
# (benchmark, harness, primary?): the first reference of each benchmark is the one its target is on
PAIRS = [("math500", "lighteval", True), ("math500", "lm_eval", False), ("gpqa_diamond", "lighteval", True),
         ("gpqa_diamond", "lm_eval", False), ("mmlu_redux", "lighteval", True), ("mmlu_redux", "lm_eval", False),
         ("ifeval", "lm_eval", True), ("humaneval_plus", "lm_eval", True)]
NAMES = ["math500", "gpqa_diamond", "mmlu_redux", "ifeval", "humaneval_plus"]
RESPONSES = {"math500": R.math_responses, "gpqa_diamond": R.mc_responses, "mmlu_redux": R.mc_responses,
             "ifeval": R.ifeval_responses, "humaneval_plus": R.humaneval_responses}


def setup() -> None:
    for name, venv in VENVS.items():
        if not (venv / "bin/python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)
        subprocess.run(pip + PINS[name], check=True)


def rows() -> dict[str, list[dict]]:
    """tests/benchmark_rows/ plus the extra rows. MATH-500's second fixture row has its solution cut
    to "..."; the references read the gold from the solution, so it gets the real row's ending."""
    shipped = {n: [json.loads(x) for x in (REPO / f"tests/benchmark_rows/{n}.jsonl").read_text().splitlines() if x]
               for n in NAMES}
    for r in shipped["math500"]:
        if "\\boxed" not in r["solution"]:
            r["solution"] += f" So the sum is $\\boxed{{{r['answer']}}}$."
    extra = {"math500": R.math_rows(), "gpqa_diamond": R.gpqa_rows(shipped["gpqa_diamond"][0]),
             "mmlu_redux": R.mmlu_rows(), "ifeval": R.ifeval_rows(),
             "humaneval_plus": R.humaneval_rows(shipped["humaneval_plus"][0]["test"])}
    return {n: shipped[n] + extra[n] for n in NAMES}


def build_items(tmp: Path, all_rows: dict[str, list[dict]]) -> dict[str, list[tuple[dict, dict]]]:
    """(row, item) per benchmark through the shipped evals/ entries pointed at local files."""
    import yaml

    from qwen3_recipe.catalog import load_catalogs
    from qwen3_recipe.catalog.items import benchmark_item, in_window
    from qwen3_recipe.catalog.rows import entry_rows
    entries: dict = {}
    for f in sorted((REPO / "evals").glob("*.yaml")):
        entries.update(yaml.safe_load(f.read_text()) or {})
    folder = tmp / "evals"
    folder.mkdir()
    local = {}
    for name in NAMES:
        path = tmp / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in all_rows[name]))
        local[name] = {k: v for k, v in entries[name].items() if k not in ("hf_id", "config", "revision")}
        local[name]["path"] = str(path)
    (folder / "bench.yaml").write_text(yaml.safe_dump(local, sort_keys=False))
    cat = load_catalogs(tmp, evals=str(folder))
    out = {}
    for name in NAMES:
        entry = cat.evals[name]
        found = entry_rows(name, entry.spec, entry.local_path())
        out[name] = [(r, benchmark_item(name, entry.spec, r, i))
                     for i, r in enumerate(found) if in_window(entry.spec, r)]
    return out


def ref_doc(bench: str, harness: str, row: dict, item: dict) -> dict:
    """The reference's doc for the item the model was shown (GPQA in our shuffled order)."""
    if bench == "math500":
        return {"problem": row["problem"], "solution": row["solution"]}
    if bench in ("gpqa_diamond", "mmlu_redux"):
        if harness == "lighteval":
            return {"query": item["rendered_prompt"], "gold": item["gold"]}
        return {"choices": item["choices"], "answer": f"({item['gold']})" if bench == "gpqa_diamond" else item["gold"]}
    if bench == "ifeval":
        return {"key": row["key"], "prompt": row["prompt"], "instruction_id_list": row["instruction_id_list"],
                "kwargs": row["kwargs"]}
    return {k: row[k] for k in ("prompt", "test", "entry_point")}


def ours(bench: str, item: dict, text: str) -> dict:
    from qwen3_recipe.verify import build_verifier
    v = build_verifier({"type": item["verifier"]}).verify(text, item["gold"], item)  # as the eval job does
    out = {"ok": v.ok, "reason": v.reason, "extracted": v.extracted if bench != "humaneval_plus" else None}
    if bench == "ifeval":
        out |= {k: v.details.get(k) for k in ("prompt_loose", "strict", "loose")}
    return out


def run_reference(harness: str, tasks: list[dict], punkt_root: str) -> list[dict]:
    python = VENVS[harness] / "bin/python"
    if not python.exists():
        sys.exit(f"no reference venv at {VENVS[harness]}: run with --setup first")
    env = dict(os.environ, NLTK_DATA=punkt_root, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_ALLOW_CODE_EVAL="1", PYTHONWARNINGS="ignore")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "in.json").write_text(json.dumps(tasks))
        run = subprocess.run([str(python), str(HERE / "agreement_reference.py"), harness, f"{d}/in.json",
                              f"{d}/out.json"], env=env, capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"{harness} reference failed:\n{run.stderr[-3000:]}")
        return json.loads((Path(d) / "out.json").read_text())


def versions(harness: str) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys; "
            f"print(json.dumps({{p: m.version(p) for p in {SHOWN[harness]!r}}}))")
    out = subprocess.run([str(VENVS[harness] / "bin/python"), "-c", code], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def code_state() -> dict:
    """The commit our side ran from, and the scoring files that differ from it (uncommitted work)."""
    git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout  # noqa: E731
    return {"head": git("rev-parse", "--short", "HEAD").strip(),
            "uncommitted": git("status", "--porcelain", "--", "qwen3_recipe/verify",
                               "qwen3_recipe/catalog").splitlines()}


def agree(bench: str, mine: dict, ref: dict) -> bool:
    if bench == "ifeval":  # all four IFEval numbers: prompt-level strict/loose and every instruction's
        return all(mine[k] == ref.get(k) for k in ("ok", "prompt_loose", "strict", "loose"))
    return mine["ok"] == ref["ok"]


UNCLOSED = "ours rejects an unclosed think block (the reference scores the raw text)"


def explain(rec: dict) -> str:
    """The cause of a disagreement, from what each side read; "unexplained" when no rule knows it."""
    bench, harness, kind = rec["bench"], rec["harness"], rec["kind"]
    mine, ref = rec["ours"], rec["ref"]
    answer, got = rec["response"].rsplit("</think>", 1)[-1], ref.get("extracted")
    mc = bench in ("gpqa_diamond", "mmlu_redux")
    first = re.search("[ABCD]", answer)
    if mine["reason"] == "unclosed_think":
        return UNCLOSED
    if "error" in ref:
        return f"the reference raised: {ref['error']}"
    if mine["reason"] == "bad_gold":
        return "OURS (suspected bug): `_parse_gold` takes the escaped dollar of a currency gold (\\$18.90) for a " \
               "`$` delimiter, parses it bare, gets nothing: bad_gold"
    if mc and re.search(r"answer is[^\n]*answer is", answer, re.IGNORECASE):
        return "OURS (suspected bug): of two 'answer is' on one line ours reads the first (its phrase regex " \
               "swallows the rest of the line), the reference the last"
    if bench == "mmlu_redux" and harness == "lm_eval" and first and got == first.group(0):
        return "reference's regex takes the first capital A-D anywhere (lm-eval's known-bad `([ABCD])`)"
    if bench == "mmlu_redux" and harness == "lm_eval" and got == "[invalid]":
        return "reference's `([ABCD])` is case-sensitive: 'answer: b' has no capital letter"
    if mc and kind == "malformed/hedge":
        return "a hedge naming two letters: ours takes the last one, the reference none"
    if mc and harness == "lm_eval" and got == "[invalid]":
        return "reference's flexible-extract wants '(X)', ': X' (capital) or an option's text: a bare letter, " \
               "'The answer is X', \\boxed{X} or 'answer: x' is [invalid]"
    if mc and harness == "lm_eval" and mine["reason"] == "no_answer":
        return "reference maps an option's text back to its letter; ours reads letters only"
    if mc and harness == "lm_eval" and got and got not in answer:
        return "reference's option-text fallback matched another option inside the reply (punctuation stripped: " \
               "'2.5 eV' reads as '25 eV'; a one-letter option 'L' matches inside words)"
    if mc and harness == "lighteval" and re.search(r"[Aa]nswer:\s*[A-D]\n", answer):
        return "reference's anchored patterns need a space or the end of the text after the letter, so 'Answer: X' " \
               "then a new line is missed" + ("; its anchorless fallback reads the 'B' of 'Because'" if got else "")
    if mc and harness == "lighteval" and not got:
        if re.search(r"answer:\s*[a-d]\b", answer):
            return "reference reads capital letters only ('answer: b')"
        if "\\boxed" in answer:
            return "reference has no \\boxed{X} pattern (and pass_at_k_letters no anchorless fallback)"
        return "no 'answer' anchor and no letter at a line start: pass_at_k_letters has no anchorless fallback"
    if bench == "humaneval_plus" and answer.count("```") >= 4:
        return "two code blocks: ours runs the last, lm-eval's cut at the first closing fence keeps the first"
    if bench == "ifeval":
        return "IFEval checkers differ on " + ", ".join(k for k in ("ok", "prompt_loose", "strict", "loose")
                                                       if mine[k] != ref.get(k))
    return "unexplained"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setup", action="store_true", help="create the reference venvs (pip, pinned) and exit")
    ap.add_argument("--out", default="verifier_agreement.json")
    args = ap.parse_args()
    if args.setup:
        return setup()
    t0 = time.time()
    from qwen3_recipe.verify.ifeval import ensure_punkt_tab
    punkt = ensure_punkt_tab()  # nltk's English punkt_tab, offline; lm-eval's IFEval downloads it at import
    punkt_root = punkt[:punkt.index("tokenizers")]
    with tempfile.TemporaryDirectory() as tmp:
        items = build_items(Path(tmp), rows())
    cases = [(bench, row, item, kind, text) for bench in NAMES for k, (row, item) in enumerate(items[bench])
             for kind, text in RESPONSES[bench](item, k)]
    t_ours = time.time()
    mine = [ours(bench, item, text) for bench, _, item, _, text in cases]
    t_ours = time.time() - t_ours
    records, timing = [], {"ours_s": round(t_ours, 1)}
    for harness in VENVS:
        benches = {b for b, h, _ in PAIRS if h == harness}
        idx = [i for i, c in enumerate(cases) if c[0] in benches]
        t = time.time()
        refs = run_reference(harness, [{"bench": cases[i][0], "doc": ref_doc(cases[i][0], harness, cases[i][1],
                                                                           cases[i][2]), "response": cases[i][4]}
                                       for i in idx], punkt_root)
        timing[f"{harness}_s"] = round(time.time() - t, 1)
        for i, ref in zip(idx, refs):
            bench, _, item, kind, text = cases[i]
            records.append({"bench": bench, "harness": harness, "item": item["id"], "kind": kind, "response": text,
                            "ours": mine[i], "ref": ref, "agree": agree(bench, mine[i], ref)})
    for rec in records:
        rec["why"] = None if rec["agree"] else explain(rec)
    summary = []
    for bench, harness, primary in PAIRS:
        rs = [r for r in records if (r["bench"], r["harness"]) == (bench, harness)]
        bad = [r for r in rs if not r["agree"]]
        unclosed = sum(r["ours"]["reason"] == "unclosed_think" for r in bad)
        summary.append({"benchmark": bench, "reference": harness, "primary": primary, "n": len(rs),
                        "agree": len(rs) - len(bad), "agreement_pct": round(100 * (len(rs) - len(bad)) / len(rs), 1),
                        "disagree": len(bad), "unclosed_think_only": unclosed,
                        "agreement_excl_unclosed_pct": round(100 * (len(rs) - len(bad) + unclosed) / len(rs), 1),
                        "causes": dict(Counter(r["why"] for r in bad).most_common()),
                        "by_kind": {k: f"{n}/{sum(r['kind'] == k for r in rs)}"
                                    for k, n in sorted(Counter(r["kind"] for r in bad).items())}})
    timing["total_s"] = round(time.time() - t0, 1)
    report = {"date": datetime.date.today().isoformat(), "code": code_state(),
              "versions": {h: versions(h) for h in VENVS},
              "timing": timing, "summary": summary, "disagreements": [r for r in records if not r["agree"]],
              "records": records}
    Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print_report(report)


def snippet(text: str, n: int = 70) -> str:
    s = text.replace("\n", "\\n")
    return s if len(s) <= n else s[:n - 3] + "..."


def print_report(report: dict) -> None:
    code = report["code"]
    print(f"ours at {code['head']}" + (f" + uncommitted {len(code['uncommitted'])} scoring files" if code["uncommitted"]
                                       else ""))
    print(f"verifier agreement, {report['date']}; references: " + "; ".join(
        f"{h} " + ", ".join(f"{p} {v}" for p, v in vs.items()) for h, vs in report["versions"].items()))
    print("\n| benchmark | reference | n | agree | agreement | disagreements (unclosed think only) "
          "| excl. unclosed think |\n|---|---|---|---|---|---|---|")
    for s in report["summary"]:
        ref = s["reference"] + ("" if s["primary"] else " (secondary)")
        print(f"| {s['benchmark']} | {ref} | {s['n']} | {s['agree']} | {s['agreement_pct']}% | {s['disagree']} "
              f"({s['unclosed_think_only']}) | {s['agreement_excl_unclosed_pct']}% |")
    print("\ncauses (count):")
    for s in report["summary"]:
        for why, n in s["causes"].items():
            print(f"- {s['benchmark']} / {s['reference']}: {n} x {why}")
    print("\ndisagreements (benchmark / reference / item / kind: ours vs reference - cause):")
    for r in report["disagreements"]:
        o, f = r["ours"], r["ref"]
        print(f"- {r['bench']} / {r['harness']} / {r['item']} / {r['kind']}: {snippet(r['response'])!r}\n"
              f"    ours {o['ok']} ({o['reason']}, {snippet(str(o.get('extracted')), 40)!r}) vs ref {f['ok']} "
              f"({snippet(str(f.get('extracted', f.get('error'))), 40)!r}) - {r['why']}")
    print(f"\ntiming: {report['timing']}")


if __name__ == "__main__":
    main()
