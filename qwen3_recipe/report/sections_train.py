"""Sections 5-7: loss per training stage, reward and KL for RL and distillation, eval accuracy
against the thinking budget."""

from __future__ import annotations

from typing import Any

from qwen3_recipe.report import charts_train, queries
from qwen3_recipe.report.page import Section, Table
from qwen3_recipe.report.queries import Db
from qwen3_recipe.report.rundata import DISTILL_KINDS, LOSS_KEYS, RL_KINDS, SFT_KINDS, JobInfo, RunInfo

POST_KINDS = SFT_KINDS + RL_KINDS + DISTILL_KINDS
Series = list[tuple[float, float]]


def _loss(rows: list[dict[str, Any]]) -> list[tuple[int, float]]:
    key = next((k for k in LOSS_KEYS if any(k in r for r in rows)), None)
    return [(r["step"], r[key]) for r in rows if key and isinstance(r.get(key), (int, float))]


def _groups(run: RunInfo, *groups: str) -> str:
    present = [g for g in groups if any(g in j.groups for j in run.jobs)]
    return ",".join(present or groups[:1])


def loss_section(run: RunInfo) -> Section:
    s = Section("loss", "Training loss from each stage's metrics.jsonl; pretraining stages follow one another "
                        "along the tokens seen.")
    pre: list[tuple[str, Series]] = []
    offset, summary = 0, []
    for job in run.of_kind("pretrain"):
        cfg = job.config.get("stage") or {}
        batch = cfg.get("batch_tokens") or 1
        points = _loss(run.metrics(job))
        pre.append((job.stage, [(offset + step * batch, v) for step, v in points]))
        offset += cfg.get("tokens") or (points[-1][0] * batch if points else 0)
        summary.append(_summary(job, points))
    post = [(job, _loss(run.metrics(job))) for job in run.of_kind(*POST_KINDS)]
    summary += [_summary(job, points) for job, points in post]
    if any(points for _, points in pre):
        s.add(charts_train.pretrain_loss_chart(pre))
    if any(points for _, points in post):
        s.add(charts_train.stage_loss_chart([(job.stage, points) for job, points in post if points]))
    if not s.blocks:
        if summary:
            return s.no_data(run.command(_groups(run, "pretrain", "posttrain")))
        s.empty = "this recipe has no training stages"
        return s
    return s.add(Table(["stage", "kind", "status", "steps logged", "first loss", "last loss", "min loss"], summary))


def _summary(job: JobInfo, points: list[tuple[int, float]]) -> list[Any]:
    values = [v for _, v in points]
    return [job.stage, job.kind, job.status, len(points), values[0] if values else None,
            values[-1] if values else None, min(values) if values else None]


def _is_reward(metric: str) -> bool:
    return metric in ("reward_mean", "accuracy") or (metric.startswith("heldout_") and
                                                     ("reward" in metric or "accuracy" in metric))


def _is_kl(metric: str, metrics: dict[str, Series]) -> bool:
    if "kl" not in metric or metric in ("kl_direction_reverse", "heldout_tokens"):
        return False
    return not (metric == "approx_kl" and "kl" in metrics)  # the same number, logged twice


def _stage_metrics(run: RunInfo, job: JobInfo, steps: dict[str, dict[str, Series]]) -> dict[str, Series]:
    """Provenance's train_steps (held-out evaluations included) or else metrics.jsonl."""
    if steps.get(job.stage):
        return steps[job.stage]
    out: dict[str, Series] = {}
    for row in run.metrics(job):
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, []).append((row["step"], value))
    return out


def rl_section(run: RunInfo, db: Db) -> Section:
    s = Section("rl", "Per step: mean reward and accuracy of the sampled groups, held-out evaluations (dashed), "
                      "and the policy's KL (to its previous policy for GRPO, to the teacher for distillation).")
    jobs = run.of_kind(*RL_KINDS, *DISTILL_KINDS)
    steps = queries.train_steps(db)
    rows = []
    for job in jobs:
        metrics = _stage_metrics(run, job, steps)
        if not metrics:
            continue
        reward = {m: v for m, v in metrics.items() if _is_reward(m)}
        kl = {m: v for m, v in metrics.items() if _is_kl(m, metrics)}
        margins = {m: v for m, v in metrics.items() if m.endswith("margin")}  # DPO: no KL term, its margin
        s.add(charts_train.reward_kl_chart(job.stage, job.kind, reward, *((kl, "KL") if kl or not margins
                                                                          else (margins, "DPO margin"))))
        rows.append([job.stage, job.kind, job.status, len(metrics.get("loss") or metrics.get("reward_mean") or []),
                     _at(reward.get("reward_mean"), 0), _at(reward.get("reward_mean"), -1),
                     *[_at(next((v for m, v in sorted(reward.items()) if m.startswith("heldout_")), None), i)
                       for i in (0, -1)], _at(kl.get("kl") or kl.get("kl_topk") or kl.get("heldout_kl"), -1)])
    if rows:
        s.add(Table(["stage", "kind", "status", "steps", "first reward", "last reward", "held-out before",
                     "held-out after", "last KL"], rows))
    elif jobs:
        s.no_data(run.command(_groups(run, "posttrain")))
    else:
        s.empty = "this recipe has no RL or distillation stage"
    return s


def _at(points: Series | None, i: int) -> float | None:
    return points[i][1] if points else None


def eval_section(run: RunInfo, db: Db) -> Section:
    s = Section("evals", "Accuracy per benchmark, stage evaluated and mode; think mode across thinking budgets "
                         "(none: unlimited), non-thinking mode as a dashed level.")
    rows = [r for r in queries.eval_accuracy(db) if r["accuracy"] is not None]
    if not rows:
        if run.of_kind("eval"):
            return s.no_data(run.command(_groups(run, "evals")))
        s.empty = "the recipe declares no evals"
        return s
    stage_rank = {j.stage: i for i, j in enumerate(run.jobs)}
    rows.sort(key=lambda r: (r["benchmark"], stage_rank.get(r["stage"], len(stage_rank)), r["mode"],
                             r["thinking_budget"] is None, r["thinking_budget"] or 0))
    for benchmark in dict.fromkeys(r["benchmark"] for r in rows):
        s.add(charts_train.eval_chart(benchmark, [r for r in rows if r["benchmark"] == benchmark]))
    return s.add(Table(["benchmark", "stage", "mode", "thinking budget", "items", "samples", "accuracy", "mean tokens"],
                       [[r["benchmark"], r["stage"], r["mode"], r["thinking_budget"] if r["thinking_budget"] is not None
                         else "none", r["items"], r["samples"], r["accuracy"], r["mean_tokens"]] for r in rows],
                       numeric={3, 4, 5, 6, 7}))
