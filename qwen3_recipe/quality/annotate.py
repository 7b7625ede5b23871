"""`quality.annotate`: sample each source's curated documents, have the annotator (vLLM, a vLLM
server or transformers; the recipe's mode, greedy by default) label each along every dimension
against its rubric, parse the labels, train one classifier per dimension, save them
(`classifiers/<dimension>/`), and record every annotation in provenance. Generation goes through
the synth jobs' content-addressed request cache, so a killed job resumes without regenerating, and
a change that leaves prompts alone (holdout, ridge alpha) costs no tokens."""

from __future__ import annotations

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.quality.rubric import (
    agrees,
    as_reference,
    bounds,
    compile_rubric,
    parse_label,
    parse_score,
    prompt_digest,
    render,
)

CLASSIFIERS = "classifiers"


def annotation_requests(docs: list[dict], cfg: dict, seed: int, annotator: str) -> list[dict]:
    """One request per document and dimension, in (dimension, document) order."""
    from qwen3_recipe.synth.cache import request_key
    out = []
    for name, dim in cfg["dimensions"].items():
        template = compile_rubric(dim["rubric"])
        for d in docs:
            content = render(template, d["text"], d["source"], name, dim, cfg["max_chars"])
            req = {"prompt_id": f"{name}/{d['doc_id']}", "messages": [{"role": "user", "content": content}],
                   "mode": cfg["mode"], "n": 1, "max_tokens": cfg["max_tokens"], "thinking_budget": None,
                   "sampling": {"temperature": cfg["temperature"]}, "seed": (seed, d["doc_id"]), "teacher": annotator}
            req["key"] = request_key(req)
            out.append(req)
    return out


def parse(output: str, dim: dict) -> tuple[float | str | None, str]:
    return parse_score(output, *bounds(dim)) if dim.get("scale") else parse_label(output, dim["labels"])


def split(row: dict, held: set[str]) -> str | None:
    return None if row["value"] is None else "holdout" if row["doc_id"] in held else "train"


def train_dimension(name: str, dim: dict, rows: list[dict], cfg: dict, annotator: str, seed: int, folder):
    """The dimension's classifier, saved under classifiers/<name>; (classifier, held-out ids)."""
    from qwen3_recipe.quality.classifier import train
    kind = {"scale": list(bounds(dim))} if dim.get("scale") else {"labels": dim["labels"]}
    context = {"dimension": name, **kind, "annotator": annotator, "prompt_digest": prompt_digest(dim["rubric"]),
               "max_chars": cfg["max_chars"]}
    clf, held = train(rows, cfg["classifier"], context, seed)
    clf.save(folder / CLASSIFIERS / name)
    return clf, held


def agreement(dim: dict, rows: list[dict], predictions: list) -> str:
    """How often the annotator's labels and the classifier's predictions match the documents'
    reference values, on the sample ('' without a reference)."""
    checked = [(r, p) for r, p in zip(rows, predictions) if r["reference"] is not None]
    if not dim.get("reference") or not checked:
        return ""
    n = len(checked)  # an unparsed annotation (None) counts as a disagreement
    annotator = sum(agrees(r["value"], r["reference"]) is True for r, _ in checked) / n
    classifier = sum(agrees(p, r["reference"]) is True for r, p in checked) / n
    return (f"; against `{dim['reference']}` on {n:,}: "
            f"annotator {annotator:.1%}, classifier {classifier:.1%} (in-sample: "
            "mostly its training rows; quality.label measures every document)")


def run_annotate(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.compiler.lowerers import load_lowered
    from qwen3_recipe.console import console
    from qwen3_recipe.progress import synth_progress
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.quality.corpus import curated_inputs, sample_documents
    from qwen3_recipe.synth.cache import RequestCache
    from qwen3_recipe.synth.job import counting, generate_missing

    job, folder, lowered = p.job, plan.run_dir / p.job.dir, load_lowered(p, plan)
    cfg, seed = lowered["quality"], lowered["seed"]
    model, annotator = lowered["model"], lowered["model_id"]
    fields = tuple(dim["reference"] for dim in cfg["dimensions"].values() if dim.get("reference"))
    docs = sample_documents(curated_inputs(plan.run_dir, lowered["curated"]), lowered["sources"],
                            cfg["sample"], seed, cfg["max_chars"], fields)
    requests = annotation_requests(docs, cfg, seed, annotator)
    cache = RequestCache(folder / "cache")
    with synth_progress(f"{job.name}: annotating", len(requests),
                        done=sum(r["key"] in cache for r in requests)) as progress:
        engine_cfg = {"engine": cfg["engine"], "server_url": cfg.get("server_url"), "max_tokens": cfg["max_tokens"],
                      "serving": lowered["serving"], "executor": lowered["executor"]}
        generate_missing(requests, cache, engine_cfg, model, counting(progress, cache), folder)
    rec = ShardRecorder(folder / "provenance", job.name, "annotate", 0)
    lines = []
    for i, (name, dim) in enumerate(cfg["dimensions"].items()):
        rows = []
        for d, req in zip(docs, requests[i * len(docs):(i + 1) * len(docs)]):
            sample = cache.get(req["key"])[0]
            value, how = parse(sample["text"], dim)
            ref = as_reference(d["metadata"].get(dim["reference"])) if dim.get("reference") else None
            rows.append({**d, "output": sample["text"], "value": value, "how": how, "reference": ref,
                         "finish_reason": sample.get("finish_reason"), "tokens": len(sample.get("token_ids") or [])})
        clf, held = train_dimension(name, dim, rows, cfg, annotator, seed, folder)
        scale = clf.is_scale
        predictions = clf.predict_values([r["text"] for r in rows])
        for r, pred in zip(rows, predictions):
            rec.add("annotations", source=r["source"], doc_id=r["doc_id"], dimension=name, annotator=annotator,
                    prompt_digest=clf.meta["prompt_digest"], output=r["output"],
                    score=r["value"] if scale else None, label=None if scale else r["value"], parsed=r["how"],
                    finish_reason=r["finish_reason"], tokens=r["tokens"], split=split(r, held),
                    predicted=pred if scale else None, predicted_label=None if scale else pred,
                    classifier_version=clf.version, reference=r["reference"])
        m = clf.meta
        metrics = (("" if not scale else f"MAE {m['holdout_mae']:.3f}, ") + f"accuracy {m['holdout_accuracy']:.1%}"
                   if "holdout_accuracy" in m else "no held-out set")
        lines.append(f"  {name}: {len(rows) - m['unscored']:,}/{len(rows):,} parsed; classifier {clf.version} "
                     f"trained on {m['train_size']:,} (held out: {metrics})" + agreement(dim, rows, predictions))
    rec.close()
    build_database(plan.run_dir)
    console().print(f"{job.name}: {len(docs):,} documents labelled by {annotator} -> {folder / CLASSIFIERS}\n"
                    + "\n".join(lines))
