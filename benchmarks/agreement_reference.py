"""The reference side of benchmarks/verifier_agreement.py: run INSIDE a reference virtualenv (lm-eval
or lighteval, never the project's), reading tasks as JSON and writing one result per task as JSON.

    <ref-venv>/bin/python benchmarks/agreement_reference.py {lm_eval|lighteval} TASKS.json RESULTS.json

Each task is {"bench", "doc", "response"}. The response is first cut the way the harness itself cuts
a thinking model's output: lm-eval's `postprocess_generated_text(text, None, "</think>")` (what its
vLLM/HF/API backends do with `think_end_token`: keep what follows the last `</think>`), lighteval's
`remove_reasoning_tags(text, [("<think>", "</think>")])` (its default). An unclosed block is left
as it is by both: the harness scores the raw text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

# lm-eval's HumanEval metric is HF `evaluate`'s code_eval, which `evaluate.load("code_eval")` fetches
# from the hub (lm_eval/tasks/humaneval/utils.py loads it at import, so that module cannot be imported
# offline). This is code_eval's execute.py `unsafe_execute` (timeout 3.0 s, its default and lm-eval's),
# run in a fresh interpreter per program: the same reliability guard, IO swallowed, any BaseException
# (SystemExit included) "failed", only an exec that returns "passed".
CODE_EVAL = r'''
import builtins, contextlib, faulthandler, io, os, shutil, signal, subprocess, sys, tempfile
import numpy  # loaded before the guard, as in lm-eval's process that code_eval forks (the tests import it)
program = open(sys.argv[1]).read()
out = os.dup(1)
class TimeoutException(Exception): pass
class WriteOnlyStringIO(io.StringIO):
    def read(self, *a, **k): raise OSError
    def readline(self, *a, **k): raise OSError
    def readlines(self, *a, **k): raise OSError
    def readable(self, *a, **k): return False
class redirect_stdin(contextlib._RedirectStream): _stream = "stdin"
def handler(signum, frame): raise TimeoutException("Timed out!")
os.chdir(tempfile.mkdtemp())
faulthandler.disable()
builtins.exit = builtins.quit = None
os.environ["OMP_NUM_THREADS"] = "1"
for name in ("kill system putenv remove removedirs rmdir fchdir setuid fork forkpty killpg rename renames "
             "truncate replace unlink fchmod fchown chmod chown chroot lchflags lchmod lchown getcwd chdir").split():
    setattr(os, name, None)
shutil.rmtree = shutil.move = shutil.chown = None
subprocess.Popen = None
builtins.help = None
for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
    sys.modules[name] = None
try:
    stream = WriteOnlyStringIO()
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream), redirect_stdin(stream):
        signal.setitimer(signal.ITIMER_REAL, 3.0)
        signal.signal(signal.SIGALRM, handler)
        try:
            exec(program, {})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    result = "passed"
except TimeoutException:
    result = "timed out"
except BaseException as e:
    result = f"failed: {type(e).__name__}: {e}"[:200]
os.write(out, result.encode())
'''


def completion(text: str) -> str:
    """The completion a chat response gives lm-eval's `humaneval_instruct`: its gen_prefix opens the
    ```python block for the model, and `build_predictions_instruct` keeps the text up to the next
    "```". A response that opens the block itself gets the same cut after its own opening fence line;
    one without a fence is a raw completion (`build_predictions`: prompt + text)."""
    if "```" not in text:
        return text
    start = text.find("```")
    body = text[text.find("\n", start) + 1:] if "\n" in text[start:] else ""
    return body[:body.find("```")] if "```" in body else body


def code_eval(program: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(program)
    try:
        run = subprocess.run([sys.executable, "-c", CODE_EVAL, f.name], capture_output=True, text=True, timeout=4.0)
        return run.stdout or f"timed out / died (exit {run.returncode})"
    except subprocess.TimeoutExpired:
        return "timed out"
    finally:
        os.unlink(f.name)


def batch(fn):
    """Mark a scorer that takes (docs, responses) lists, as the harness applies it."""
    fn.batch = True
    return fn


def lm_eval_scorers():
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import MultiChoiceRegexFilter, RegexFilter
    from lm_eval.filters.selection import TakeFirstFilter
    from lm_eval.models.utils import postprocess_generated_text
    from lm_eval.tasks.ifeval.utils import process_results as ifeval_results
    from lm_eval.tasks.minerva_math import utils as minerva

    def em(pred: str, gold: str) -> bool:
        return exact_match_hf_evaluate([pred], [gold], ignore_case=True, ignore_punctuation=True)["exact_match"] == 1

    def math(doc, resp):  # minerva_math500: process_docs, then process_results' math_verify
        sol = doc["solution"]
        doc = {"problem": doc["problem"], "solution": sol,
               "answer": minerva.normalize_final_answer(minerva.remove_boxed(minerva.last_boxed_only_string(sol)))}
        return {"ok": minerva.process_results(doc, [resp])["math_verify"] == 1,
                "extracted": [str(x) for x in minerva.parse(resp)][-1:]}

    def gpqa(docs, resps):  # gpqa_diamond_cot_zeroshot / generative: flexible-extract, over the whole batch
        f = MultiChoiceRegexFilter(regex_pattern=r"(\([A-Z]\))", group_select=-1, ignore_case=True,
                                   ignore_punctuation=True)  # (as lm-eval: apply builds a punctuation table per call)
        preds = TakeFirstFilter().apply(f.apply([[r] for r in resps], docs), docs)
        return [{"ok": em(p, d["answer"]), "extracted": p} for p, d in zip(preds, docs)]

    def mmlu(doc, resp):  # mmlu_redux generative: regex ([ABCD]) + take_first
        pred = list(TakeFirstFilter().apply(RegexFilter(regex_pattern="([ABCD])").apply([[resp]], [doc]), [doc]))[0]
        return {"ok": em(pred, doc["answer"]), "extracted": pred}

    def ifeval(doc, resp):
        res = ifeval_results(doc, [resp])
        return {"ok": bool(res["prompt_level_strict_acc"]), "prompt_loose": bool(res["prompt_level_loose_acc"]),
                "strict": [bool(x) for x in res["inst_level_strict_acc"]],
                "loose": [bool(x) for x in res["inst_level_loose_acc"]]}

    def humaneval(docs, resps):  # prediction = prompt + completion; program = prediction + "\n" + target
        programs = [d["prompt"] + completion(r) + "\n" + d["test"] + f"\ncheck({d['entry_point']})"
                    for d, r in zip(docs, resps)]
        with ThreadPoolExecutor(max_workers=4) as pool:  # code_eval's num_workers
            return [{"ok": out == "passed", "extracted": out} for out in pool.map(code_eval, programs)]

    cut = lambda text: postprocess_generated_text(text, None, "</think>")  # noqa: E731
    return cut, {"math500": math, "gpqa_diamond": batch(gpqa), "mmlu_redux": mmlu, "ifeval": ifeval,
                 "humaneval_plus": batch(humaneval)}


def lighteval_scorers():
    from lighteval.metrics.metrics import Metrics
    from lighteval.models.model_output import ModelResponse
    from lighteval.tasks.requests import Doc
    from lighteval.utils.utils import remove_reasoning_tags

    def scorer(metric):
        passk = metric.sample_level_fn

        def score(doc, resp):  # the metric's own call, then its inner extractive match again for what it read
            ok = passk.compute(doc=doc, model_response=ModelResponse(text=[resp])) == 1.0
            inner = Doc(query=doc.query, choices=[passk.preprocess(c) for c in doc.choices], gold_index=doc.gold_index)
            passk.compute_score(doc=inner, model_response=ModelResponse(text=[passk.preprocess(resp)]))
            return {"ok": ok, "extracted": (inner.specific or {}).get("extracted_predictions")}
        return score

    math = scorer(Metrics.pass_at_k_math(sample_params={"k": 1, "n": 1}))
    gpqa = scorer(Metrics.gpqa_instruct_pass_at_k(sample_params={"k": 1, "n": 1}))
    letters = scorer(Metrics.pass_at_k_letters(sample_params={"k": 1, "n": 1}))

    def mc(score):
        return lambda d, r: score(Doc(query=d["query"], choices=list("ABCD"), gold_index="ABCD".index(d["gold"])), r)

    cut = lambda text: remove_reasoning_tags(text, [("<think>", "</think>")])  # noqa: E731
    return cut, {  # math_500.py: the gold is "ANSWER: " + the whole solution
        "math500": lambda d, r: math(Doc(query=d["problem"], choices=[f"ANSWER: {d['solution']}"], gold_index=0), r),
        "gpqa_diamond": mc(gpqa), "mmlu_redux": mc(letters)}


def main() -> None:
    harness, tasks_path, out_path = sys.argv[1:4]
    if harness == "lm_eval":
        import langdetect
        langdetect.DetectorFactory.seed = 0  # as ours: unseeded, langdetect answers at random on short text
    cut, scorers = lm_eval_scorers() if harness == "lm_eval" else lighteval_scorers()
    tasks = json.load(open(tasks_path))
    results: list = [None] * len(tasks)
    for bench, fn in scorers.items():
        idx = [i for i, t in enumerate(tasks) if t["bench"] == bench]
        if getattr(fn, "batch", False) and idx:
            outs = fn([tasks[i]["doc"] for i in idx], [cut(tasks[i]["response"]) for i in idx])
            for i, out in zip(idx, outs):
                results[i] = out
            continue
        for i in idx:
            try:
                results[i] = fn(tasks[i]["doc"], cut(tasks[i]["response"]))
            except Exception as e:  # recorded: the report lists it (the harness's own run would stop there)
                results[i] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:300]}
    with open(out_path, "w") as f:
        json.dump(results, f, default=lambda o: o.item() if hasattr(o, "item") else str(o))  # numpy scalars


if __name__ == "__main__":
    main()
