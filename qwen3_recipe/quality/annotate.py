"""`quality.annotate`: sample each source's curated documents, score them with the annotator (vLLM, a
vLLM server or transformers; the recipe's mode, greedy by default) against the rubric, parse the
scores, train the classifier, save it (`classifier/`), and record every annotation in provenance.
Generation goes through the synth jobs' content-addressed request cache, so a killed job resumes
without regenerating, and a change that leaves prompts alone (holdout, ridge alpha) costs no tokens."""

from __future__ import annotations

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.quality.rubric import compile_rubric, parse_score, prompt_digest, render


def annotation_requests(docs: list[dict], cfg: dict, seed: int, annotator: str) -> list[dict]:
    from qwen3_recipe.synth.cache import request_key
    template = compile_rubric(cfg["rubric"])
    out = []
    for d in docs:
        content = render(template, d["text"], d["source"], cfg["max_score"], cfg["max_chars"])
        req = {"prompt_id": d["doc_id"], "messages": [{"role": "user", "content": content}], "mode": cfg["mode"],
               "n": 1, "max_tokens": cfg["max_tokens"], "thinking_budget": None,
               "sampling": {"temperature": cfg["temperature"]}, "seed": (seed, d["doc_id"]), "teacher": annotator}
        req["key"] = request_key(req)
        out.append(req)
    return out


def split(row: dict, held: set[str]) -> str | None:
    return None if row["score"] is None else "holdout" if row["doc_id"] in held else "train"


def run_annotate(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.compiler.lowerers import load_lowered
    from qwen3_recipe.console import console
    from qwen3_recipe.progress import synth_progress
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.quality.classifier import train
    from qwen3_recipe.quality.corpus import curated_inputs, sample_documents
    from qwen3_recipe.synth.cache import RequestCache
    from qwen3_recipe.synth.job import counting, generate_missing

    job, folder, lowered = p.job, plan.run_dir / p.job.dir, load_lowered(p, plan)
    cfg, seed = lowered["quality"], lowered["seed"]
    model, annotator = lowered["model"], lowered["model_id"]
    docs = sample_documents(curated_inputs(plan.run_dir, lowered["curated"]), lowered["sources"],
                            cfg["sample"], seed, cfg["max_chars"])
    requests = annotation_requests(docs, cfg, seed, annotator)
    cache = RequestCache(folder / "cache")
    with synth_progress(f"{job.name}: annotating", len(requests),
                        done=sum(r["key"] in cache for r in requests)) as progress:
        engine_cfg = {"engine": cfg["engine"], "server_url": cfg.get("server_url"), "max_tokens": cfg["max_tokens"],
                      "serving": lowered["serving"], "executor": lowered["executor"]}
        generate_missing(requests, cache, engine_cfg, model, counting(progress, cache), folder)
    digest = prompt_digest(cfg["rubric"])
    rows = []
    for d, req in zip(docs, requests):
        sample = cache.get(req["key"])[0]
        score, how = parse_score(sample["text"], cfg["max_score"])
        rows.append({**d, "output": sample["text"], "score": score, "how": how,
                     "finish_reason": sample.get("finish_reason"), "tokens": len(sample.get("token_ids") or [])})
    context = {"annotator": annotator, "prompt_digest": digest, "max_score": cfg["max_score"],
               "max_chars": cfg["max_chars"]}
    clf, held = train(rows, cfg["classifier"], context, seed)
    clf.save(folder / "classifier")
    predicted = clf.predict([r["text"] for r in rows])
    rec = ShardRecorder(folder / "provenance", job.name, "annotate", 0)
    for r, pred in zip(rows, predicted):
        rec.add("annotations", source=r["source"], doc_id=r["doc_id"], annotator=annotator, prompt_digest=digest,
                output=r["output"], score=r["score"], parsed=r["how"], finish_reason=r["finish_reason"],
                tokens=r["tokens"], split=split(r, held), predicted=round(pred, 4), classifier_version=clf.version)
    rec.close()
    build_database(plan.run_dir)
    m = clf.meta
    metrics = (f"held-out MAE {m['holdout_mae']:.3f}, accuracy {m['holdout_accuracy']:.1%}"
               if "holdout_mae" in m else "no held-out set")
    console().print(f"{job.name}: {len(rows):,} documents scored by {annotator} ({m['unscored']:,} unparseable); "
                    f"classifier {clf.version} trained on {m['train_size']:,} ({metrics}) -> {folder / 'classifier'}")
