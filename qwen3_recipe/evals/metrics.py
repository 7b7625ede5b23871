"""Each benchmark's own metric, from its verdicts: pass@1 (mean over the k samples of each item)
for answer-checked benchmarks, IFEval's four accuracies (prompt- and instruction-level, strict and
loose, as lm-eval defines them), and the win rate against the baseline for judged ones (ties
count half)."""

from __future__ import annotations

from collections import Counter

PRIMARY = {"ifeval": "prompt_level_strict_acc", "judge": "win_rate"}
UNSCORABLE = {"no_tests", "no_gold", "bad_gold"}
"""Verdicts that say the benchmark, not the model, is at fault: the job fails on them (and when
the judge gave no readable verdict at all)."""


def metric_name(kind: str) -> str:
    return PRIMARY.get(kind, "pass@1")


def sample_score(kind: str, verdict) -> tuple[str, float]:
    """(metric, this sample's score on it): the judge's win score, else 1.0 / 0.0."""
    return metric_name(kind), float(verdict.score if kind == "judge" else verdict.ok)


def aggregate(kind: str, verdicts: list) -> dict:
    name = metric_name(kind)
    out: dict = {"metric": name}
    if not verdicts:
        return {**out, name: None}
    if kind == "ifeval":
        strict = [x for v in verdicts for x in v.details.get("strict", [])]
        loose = [x for v in verdicts for x in v.details.get("loose", [])]
        out.update(prompt_level_strict_acc=_mean([bool(v.details.get("prompt_strict")) for v in verdicts]),
                   prompt_level_loose_acc=_mean([bool(v.details.get("prompt_loose")) for v in verdicts]),
                   inst_level_strict_acc=_mean(strict), inst_level_loose_acc=_mean(loose))
        return out
    if kind == "judge":  # over battles, as Arena-Hard: a >> verdict weighs 3, unreadable ones none
        fought = [b for v in verdicts for b in v.details.get("battles", [])]
        weight = sum(w for _, w in fought)
        games = Counter(v.details.get("outcome") for v in verdicts)
        judges = {v.details.get("judge") for v in verdicts} - {None}
        return {**out, name: round(sum(s * w for s, w in fought) / weight, 6) if weight else None,
                "wins": games["win"], "ties": games["tie"], "losses": games["loss"],
                "judge_failed": games[None], "judge_model": ", ".join(sorted(judges)) or None}
    out[name] = _mean([sample_score(kind, v)[1] for v in verdicts])
    return out


def reasons(verdicts: list) -> dict[str, int]:
    return dict(Counter(v.reason for v in verdicts).most_common())


def unscorable(verdicts: list) -> Counter:
    bad = Counter(v.reason for v in verdicts if v.reason in UNSCORABLE)
    if verdicts and all(v.reason == "judge_failed" for v in verdicts):
        bad["judge_failed"] = len(verdicts)
    return bad


def _mean(xs: list) -> float | None:
    return round(sum(map(float, xs)) / len(xs), 6) if xs else None
