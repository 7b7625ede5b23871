"""Charts of training and evaluation: loss per stage, reward and KL for RL and distillation,
eval accuracy against the thinking budget."""

from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup

from qwen3_recipe.report.svg import PALETTE, figure, fmt_tokens, styled, to_svg

Series = list[tuple[float, float]]


def pretrain_loss_chart(stages: list[tuple[str, Series]]) -> Markup:
    """Pretraining stages one after another on a shared axis of tokens seen."""
    with styled():
        fig = figure(9.5, 3.0)
        ax = fig.subplots()
        for i, (name, points) in enumerate(stages):
            if points:
                ax.plot(*zip(*points), color=PALETTE[i % len(PALETTE)], lw=1.4, label=name)
                ax.axvline(points[0][0], color="#999", lw=0.8, ls=":")
        ax.set_xlabel("tokens seen")
        ax.set_ylabel("loss")
        ax.xaxis.set_major_formatter(lambda v, _: fmt_tokens(v))
        ax.legend()
        return to_svg(fig, "pretraining loss")


def stage_loss_chart(stages: list[tuple[str, Series]]) -> Markup:
    """One small panel per post-training stage: loss against step."""
    cols = min(3, len(stages))
    rows = math.ceil(len(stages) / cols)
    with styled():
        fig = figure(3.3 * cols, 2.4 * rows)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for i, (ax, (name, points)) in enumerate(zip(axes, stages)):
            ax.plot(*zip(*points), color=PALETTE[i % len(PALETTE)], lw=1.4)
            ax.set_title(name)
            ax.set_xlabel("step")
        for ax in axes[len(stages):]:
            ax.set_visible(False)
        axes[0].set_ylabel("loss")
        return to_svg(fig, "post-training loss per stage")


def merged(series: dict[str, Series]) -> dict[str, Series]:
    """One line for metrics logged with the same values (GRPO's accuracy is its 0/1 reward)."""
    out: dict[str, Series] = {}
    for metric, points in sorted(series.items()):
        same = next((m for m, p in out.items() if p == points), None)
        if same:
            out[f"{same} = {metric}"] = out.pop(same)
        else:
            out[metric] = points
    return out


def reward_kl_chart(stage: str, kind: str, reward: dict[str, Series], right: dict[str, Series],
                    right_title: str = "KL") -> Markup:
    """Reward-like metrics (mean reward, accuracy, held-out reward) on the left, KL-like on the right."""
    with styled():
        fig = figure(9.5, 2.7)
        ax_r, ax_k = fig.subplots(1, 2)
        for ax, series, title in ((ax_r, reward, "reward"), (ax_k, right, right_title)):
            for i, (metric, points) in enumerate(merged(series).items()):
                style = {"marker": "o", "ls": "--"} if metric.startswith("heldout") or len(points) < 3 else {}
                ax.plot(*zip(*points), color=PALETTE[i % len(PALETTE)], lw=1.4, label=metric, **style)
            if series:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, f"no {title} metric for a {kind} stage", transform=ax.transAxes,
                        ha="center", va="center", color="#777")
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"{stage}: {title}", loc="left")
            ax.set_xlabel("step")
        return to_svg(fig, f"{stage} reward and KL")


def _budget_label(budget: Any) -> str:
    return "none" if budget is None else fmt_tokens(budget)


def eval_chart(benchmark: str, rows: list[dict[str, Any]]) -> Markup:
    """Accuracy against thinking budget: a line per stage in think mode (budget `none` last); the
    no-think accuracy of the same stage as a dashed level."""
    budgets = sorted({r["thinking_budget"] for r in rows if r["mode"] == "think" and r["thinking_budget"] is not None})
    has_none = any(r["thinking_budget"] is None for r in rows if r["mode"] == "think")
    ticks = [_budget_label(b) for b in budgets] + (["none"] if has_none else [])
    xs = {b: i for i, b in enumerate(budgets)} | ({None: len(budgets)} if has_none else {})
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    with styled():
        fig = figure(7.5, 3.0)
        ax = fig.subplots()
        for i, stage in enumerate(stages):
            color = PALETTE[i % len(PALETTE)]
            think = sorted(((xs[r["thinking_budget"]], r["accuracy"]) for r in rows
                            if r["stage"] == stage and r["mode"] == "think"), key=lambda p: p[0])
            if think:
                ax.plot(*zip(*think), marker="o", color=color, lw=1.6, label=f"{stage} · think")
            for r in rows:
                if r["stage"] == stage and r["mode"] != "think":
                    ax.axhline(r["accuracy"], color=color, ls="--", lw=1.2,
                               label=f"{stage} · {r['mode']}" + (f" ({_budget_label(r['thinking_budget'])})"
                                                                 if r["thinking_budget"] is not None else ""))
        if ticks:
            ax.set_xticks(range(len(ticks)), ticks)
            ax.set_xlim(-0.3, len(ticks) - 0.7)
        ax.set_xlabel("thinking budget (tokens)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.03, 1.05)
        ax.set_title(benchmark, loc="left")
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        return to_svg(fig, f"{benchmark} accuracy vs thinking budget")
