"""Sections 1-4 and 8: the plan DAG, the data funnel, the mixtures, the curriculum and the
contamination findings."""

from __future__ import annotations

from collections import Counter
from typing import Any

from qwen3_recipe.recipe.slices import key_sources, parse_keys
from qwen3_recipe.report import charts_data, queries
from qwen3_recipe.report.dag import dag_svg
from qwen3_recipe.report.page import Section, Table
from qwen3_recipe.report.queries import Db
from qwen3_recipe.report.rundata import RunInfo
from qwen3_recipe.report.svg import fmt_tokens


def mixture_weights(job) -> dict:
    return (job.config.get("mixture") or {}).get("weights") or {}


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 2)


def plan_section(run: RunInfo) -> Section:
    counts = Counter(j.status for j in run.jobs)
    s = Section("plan", ", ".join(f"{n} {status}" for status, n in counts.most_common()) +
                f" of {len(run.jobs)} jobs. Edges implied by a longer path are not drawn; hover a job for details.")
    if not run.jobs:
        s.empty = "the manifest lists no jobs"
        return s
    return s.add(dag_svg(run.jobs), Table(
        ["job", "kind", "groups", "status", "finished", "tokens (est.)", "GPU-hours (est.)"],
        [[j.name, j.kind, ", ".join(j.groups), j.status, j.finished_at, j.estimate.get("tokens") or None,
          round(j.estimate.get("gpu_hours") or 0, 4) or None] for j in run.jobs]))


def funnel_section(run: RunInfo, db: Db) -> Section:
    s = Section("funnel", "Documents entering each step and kept by it. Bytes kept are exact; tokens kept are "
                          "estimated with each source's tokens per byte measured on its mixed documents.")
    funnel = queries.funnel(db, [j.name for j in run.jobs])
    if not funnel:
        s.no_data(run.command("data"))
        return s
    s.add(charts_data.funnel_chart(funnel))
    for source, rows in sorted(funnel.items()):
        s.add(Table(["job", "step", "documents in", "kept", "dropped", "main drop reasons", "MB kept",
                     "≈ tokens kept"],
                    [[r["job"], r["step"], r["documents_in"], r["kept"], r["dropped"], r["reasons"] or None,
                      None if r["bytes_kept"] is None else round(r["bytes_kept"] / 1e6, 3), r["tokens_est"]]
                     for r in rows], caption=f"source: {source}", numeric={2, 3, 4, 6, 7}))
    used = queries.mixed(db)
    if used:
        s.add(Table(["stage", "source", "documents", "unique tokens", "tokens used", "max repetitions"],
                    [[r["stage"], r["source"], r["documents"], r["unique_tokens"], r["tokens"], r["max_repetitions"]]
                     for r in used], caption="into the pretraining mixtures"))
    else:
        s.notes.append(f"no mixture yet (tokens are known once the mix jobs ran): run {run.command('data')}")
    return s


def mixture_section(run: RunInfo, db: Db) -> Section:
    s = Section("mixture", "Each pretraining stage's token share per source as the recipe declares it and as "
                           "the mix job drew it.")
    targets = queries.mixture_targets(db)
    if not targets:
        s.no_data(run.command("data"))
        return s
    used = {(r["stage"], r["source"]): r for r in queries.mixed(db)}
    rows = []
    for r in targets:
        u = used.get((r["stage"], r["source"]), {})
        rows.append([r["stage"], r["source"], _pct(r["declared_share"]), _pct(r["realized_share"]), r["budget_tokens"],
                     u.get("tokens"), u.get("documents"), u.get("max_repetitions"), r["shortfall_tokens"]])
    return s.add(charts_data.mixture_chart(targets), Table(
        ["stage", "source", "declared %", "realised %", "budget tokens", "tokens used", "documents",
         "max repetitions", "shortfall tokens"], rows))


def lengths_trained(run: RunInfo, job) -> tuple[list[tuple[int, int]], str]:
    """[(seq_len, tokens)] in training order, and whether they were trained (the stage's per-step
    record) or only compiled (the lowered schedule): the report shows what ran where it ran."""
    segments: list[tuple[int, int]] = []
    for row in run.metrics(job):
        if isinstance(row.get("seq_len"), int) and isinstance(row.get("tokens"), (int, float)):
            if segments and segments[-1][0] == row["seq_len"]:
                segments[-1] = (row["seq_len"], segments[-1][1] + int(row["tokens"]))
            else:
                segments.append((row["seq_len"], int(row["tokens"])))
    if segments:
        return segments, "trained"
    low = run.lowered(job)
    schedule = low.get("seq_len_schedule") or ([{"seq_len": low["seq_len"], "steps": low["steps"]}] if low else [])
    return [(seg["seq_len"], seg["steps"] * low["batch_tokens"]) for seg in schedule], "compiled"


def curriculum_section(run: RunInfo) -> Section:
    s = Section("curriculum", "Pretraining stages in order along the token budget (context length and RoPE base, "
                              "as trained where a stage has run, else as compiled), then post-training.")
    stages: list[dict[str, Any]] = []
    for job in run.of_kind("pretrain"):
        cfg = job.config.get("stage") or {}
        arch = (job.config.get("model") or {}).get("arch") or {}
        segments, source = lengths_trained(run, job)
        stages.append({"name": job.stage, "tokens": cfg.get("tokens") or job.estimate.get("tokens") or 0,
                       "seq_len": cfg.get("seq_len") or 0, "seq_len_start": cfg.get("seq_len_start"),
                       "segments": segments, "source": source,
                       "rope_theta": cfg.get("rope_theta") or arch.get("rope_theta"),
                       "mixture": run.resolved("pretrain", "stages", job.stage, "mixture"),
                       "lr": cfg["lr"] if isinstance(cfg.get("lr"), dict) else {},
                       "status": job.status, "description": cfg.get("description")})
    post = run.of_kind("sft", "fusion", "reasoning_rl", "general_rl", "distill_offpolicy", "distill_onpolicy")
    if not stages and not post:
        s.empty = "this recipe has no training stages"
        return s
    if stages and all(st["tokens"] and st["seq_len"] for st in stages):
        s.add(charts_data.curriculum_chart(stages))
    if stages:
        s.add(Table(["stage", "mixture", "tokens", "seq_len", "tokens per length", "RoPE base", "LR peak", "LR decay",
                     "status", "description"],
                    [[st["name"], st["mixture"], st["tokens"],
                      f"{st['seq_len_start']:,} → {st['seq_len']:,}" if st["seq_len_start"] else st["seq_len"],
                      _per_length(st["segments"], st["source"]), st["rope_theta"], st["lr"].get("peak"),
                      st["lr"].get("decay"), st["status"], st["description"]] for st in stages],
                    caption="pretraining", numeric={2, 3, 5, 6}))
    if post:
        rows = []
        for job in post:
            cfg = job.config.get("stage") or {}
            length = (f"{cfg['steps']:,} steps" if cfg.get("steps")
                      else f"{cfg['epochs']:g} epochs" if cfg.get("epochs")
                      else fmt_tokens(cfg.get("tokens")) + " tokens" if cfg.get("tokens") else None)
            data = cfg.get("data") or cfg.get("prompts")
            rows.append([job.stage, job.kind, ", ".join(data) if isinstance(data, list) else data, length,
                         cfg.get("seq_len"), cfg.get("lr"), job.status])
        s.add(Table(["stage", "type", "data / prompts", "length", "seq_len", "LR", "status"], rows,
                    caption="post-training"))
    return s


def _per_length(segments: list[tuple[int, int]], source: str) -> str | None:
    if not segments:
        return None
    return ", ".join(f"{length:,}: {fmt_tokens(tokens)}" for length, tokens in segments) + f" ({source})"


def contamination_section(run: RunInfo, db: Db) -> Section:
    s = Section("contamination", "Benchmark n-gram overlap found in the data and in prompts, and the contamination "
                                 "gate per stage.")
    decont = next((j.config.get("decontamination") for j in run.of_kind("data_prepare")
                   if j.config.get("decontamination")), None)
    gate = run.resolved("data", "decontamination") or {}  # the gate is the mix jobs' (recipe.lock.yaml)
    if decont:
        s.notes.append(f"checked against {', '.join(decont.get('benchmarks') or []) or 'no benchmarks'} "
                       f"({decont.get('method')}, n={decont.get('n')}); action: {decont.get('action')}; gate threshold "
                       f"{100 * (gate.get('threshold') or 0):.2f}% flagged documents per stage"
                       + ("; allow_contamination is set" if gate.get("allow_contamination") else ""))
    elif run.of_kind("data_prepare"):
        s.notes.append("the recipe declares no decontamination (data.decontamination)")
    findings = queries.contamination(db)
    if findings:
        s.add(Table(["benchmark", "source", "action", "benchmark items", "documents", "example n-gram"],
                    [[r["benchmark"], r["source"], r["action"], r["items"], r["documents"], r["example_ngram"]]
                     for r in findings], caption="overlap found in the data"))
    every = [j.config.get("source") for j in run.of_kind("data_prepare")]
    stage_sources = {j.config.get("stage"): key_sources(parse_keys(mixture_weights(j)), every)
                     for j in run.of_kind("data_mix") if isinstance(j.config.get("stage"), str)}
    shares = queries.flagged_shares(db, stage_sources)
    if decont and any(shares.values()):
        threshold = decont.get("threshold") or 0.0
        s.add(Table(["stage", "sources", "documents", "flagged %", "threshold %", "gate"],
                    [[stage, ", ".join(stage_sources[stage]), found[1] if found else None,
                      _pct(found[0]) if found else None, _pct(threshold),
                      "no documents yet" if not found else "passes" if found[0] <= threshold
                      else "allowed (allow_contamination)" if decont.get("allow_contamination") else "refused"]
                     for stage, found in shares.items()], caption="contamination gate"))
    prompts = db.rows("""select job, source, count(*) as checked,
                                count(*) filter (where reason = 'contaminated') as contaminated
                         from prompts group by all order by job, source""", needs=("prompts",))
    if prompts:
        s.add(Table(["job", "prompt source", "prompts checked", "dropped as contaminated"],
                    [[r["job"], r["source"], r["checked"], r["contaminated"]] for r in prompts],
                    caption="synthetic-data and RL prompts"))
    data_done = db.has("contamination") and any(j.status == "done" for j in run.of_kind("data_prepare"))
    if not findings and data_done:
        s.notes.append("no overlap found in the data")
    if not s.blocks and not data_done:
        s.no_data(run.command("data"))
    return s
