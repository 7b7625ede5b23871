"""Each benchmark's own metric, from its verdicts: pass@1 (mean over the k samples of each item)
for answer-checked benchmarks, IFEval's four accuracies (prompt- and instruction-level, strict and
loose, as lm-eval defines them), and the win rate against the baseline for judged ones: the mean
over answers of each answer's score from its two games (>> weighs 3, a tie half), answers the judge
could not read left out. Arena-Hard v0.1 fits Bradley-Terry over all weighted battles instead;
the two agree when every answer's games carry the same weight. The `eval_accuracy` view computes
the same numbers from `eval_samples.score`."""

from __future__ import annotations

from collections import Counter

PRIMARY = {"ifeval": "prompt_level_strict_acc", "judge": "win_rate"}
UNSCORABLE = {"no_tests", "no_gold", "bad_gold"}
"""Verdicts that say the benchmark, not the model, is at fault: the job fails on them (and when
the judge gave no readable verdict at all)."""


def metric_name(kind: str) -> str:
    return PRIMARY.get(kind, "pass@1")


def sample_score(kind: str, verdict) -> tuple[str, float | None]:
    """(metric, this sample's score on it): the judge's win score (None when the judge gave no
    readable verdict), else 1.0 / 0.0."""
    if kind == "judge":
        return metric_name(kind), None if verdict.reason == "judge_failed" else float(verdict.score)
    return metric_name(kind), float(verdict.ok)


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
    scores = [s for v in verdicts if (s := sample_score(kind, v)[1]) is not None]
    out[name] = _mean(scores)
    if kind == "judge":
        games = Counter(v.details.get("outcome") for v in verdicts)
        judges = {v.details.get("judge") for v in verdicts} - {None}
        out.update(wins=games["win"], ties=games["tie"], losses=games["loss"], judge_failed=games[None],
                   judge_model=", ".join(sorted(judges)) or None)
    return out


def reasons(verdicts: list) -> dict[str, int]:
    return dict(Counter(v.reason for v in verdicts).most_common())


def unscorable(verdicts: list) -> Counter:
    """The samples whose verdicts say the benchmark could not be scored; for a judged one, the
    unread games when they outnumber the read ones (a win rate of a few would pass for the rate)."""
    bad = Counter(v.reason for v in verdicts if v.reason in UNSCORABLE)
    failed = sum(v.reason == "judge_failed" for v in verdicts)
    if failed and failed >= len(verdicts) - failed:
        bad["judge_failed"] = failed
    return bad


def _mean(xs: list) -> float | None:
    return round(sum(map(float, xs)) / len(xs), 6) if xs else None
