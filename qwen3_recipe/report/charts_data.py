"""Charts of the data half: the funnel per source, declared vs realised mixture per stage and
the pretraining curriculum (context length and RoPE base along the token budget)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from qwen3_recipe.report.svg import PALETTE, figure, fmt_tokens, styled, to_svg

KEPT, DROPPED = "#4c72b0", "#e8a3a3"


def funnel_chart(funnel: dict[str, list[dict[str, Any]]]) -> Markup:
    sources = sorted(funnel)
    heights = [max(1.2, 0.34 * len(funnel[s]) + 0.7) for s in sources]
    with styled():
        fig = figure(9.5, sum(heights))
        axes = fig.subplots(len(sources), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
        for ax, source in zip(axes, sources):
            rows = funnel[source]
            labels = [f"{r['job']} · {r['step']}" for r in rows]
            ys = list(range(len(rows)))[::-1]
            kept = [r["kept"] for r in rows]
            ax.barh(ys, kept, color=KEPT, label="kept")
            ax.barh(ys, [r["dropped"] for r in rows], left=kept, color=DROPPED, label="dropped")
            top = max((r["documents_in"] for r in rows), default=1) or 1
            for y, r in zip(ys, rows):
                note = f"{r['kept']:,} kept"
                if r["dropped"]:
                    note += f", {r['dropped']:,} dropped"
                if r.get("tokens_est") is not None:
                    note += f"  (≈{fmt_tokens(r['tokens_est'])} tokens)"
                ax.text(r["documents_in"] + top * 0.01, y, note, va="center", fontsize=8.5)
            ax.set_yticks(ys, labels)
            ax.set_xlim(0, top * 1.45)
            ax.set_title(f"source: {source}", loc="left")
            ax.grid(axis="y", visible=False)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", ncols=2)
        axes[-1].set_xlabel("documents")
        return to_svg(fig, "data funnel per source")


def mixture_chart(targets: list[dict[str, Any]]) -> Markup:
    stages: dict[str, list[dict[str, Any]]] = {}
    for r in targets:
        stages.setdefault(r["stage"], []).append(r)
    n = len(stages)
    with styled():
        fig = figure(min(3.4 * n, 10.5), 2.9)
        axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
        for ax, (stage, rows) in zip(axes, stages.items()):
            xs = range(len(rows))
            declared = [100 * (r["declared_share"] or 0) for r in rows]
            realised = [100 * (r["realized_share"] or 0) for r in rows]
            ax.bar([x - 0.2 for x in xs], declared, 0.4, color="#c9d6ea", edgecolor=PALETTE[0], hatch="//",
                   label="declared")
            ax.bar([x + 0.2 for x in xs], realised, 0.4, color=PALETTE[0], label="realised")
            for x, r in zip(xs, rows):
                if r.get("shortfall_tokens"):
                    ax.annotate(f"short {fmt_tokens(r['shortfall_tokens'])}", (x, max(declared[x], realised[x])),
                                ha="center", va="bottom", fontsize=8, color=PALETTE[3])
            ax.set_xticks(list(xs), [r["source"] for r in rows])
            ax.set_title(stage)
            ax.grid(axis="x", visible=False)
        axes[0].set_ylabel("share of stage tokens (%)")
        axes[0].legend(loc="upper left")
        return to_svg(fig, "mixture declared vs realised per stage")


def curriculum_chart(stages: list[dict[str, Any]]) -> Markup:
    """Two panels over cumulative pretraining tokens: sequence length (one step per length a stage
    trains at; solid where trained, dashed where only compiled) and the RoPE base (log scale)."""
    with styled():
        fig = figure(9.5, 3.6)
        ax_len, ax_rope = fig.subplots(2, 1, sharex=True)
        start, total, narrow = 0, sum(s["tokens"] or 0 for s in stages) or 1, 0
        for i, s in enumerate(stages):
            end = start + (s["tokens"] or 0)
            for ax in (ax_len, ax_rope):
                ax.axvspan(start, end, color=PALETTE[i % len(PALETTE)], alpha=0.10, lw=0)
            narrow = narrow + 1 if end - start < 0.2 * total else 0  # stagger the names of narrow stages
            ax_len.text((start + end) / 2, 1.03 + 0.14 * (narrow % 2 == 0 and narrow > 0), s["name"],
                        transform=ax_len.get_xaxis_transform(), ha="center", va="bottom", fontsize=9,
                        fontweight="bold")
            at = start  # each length over the tokens it got (trained, else compiled), a step per length
            for length, tokens in s.get("segments") or [(s["seq_len"], end - start)]:
                ax_len.plot([at, min(at + tokens, end)], [length, length], color=PALETTE[0], lw=2,
                            ls="-" if s.get("source") == "trained" else "--")
                at += tokens
            ax_len.annotate(f"{s['seq_len']:,}", (end, s["seq_len"]), ha="right", va="bottom", fontsize=8.5)
            if s.get("rope_theta"):
                ax_rope.plot([start, end], [s["rope_theta"]] * 2, color=PALETTE[1], lw=2)
                ax_rope.annotate(f"{s['rope_theta']:.3g}", ((start + end) / 2, s["rope_theta"]), ha="center",
                                 va="bottom", fontsize=8.5)
            start = end
        ax_len.set_ylabel("seq_len")
        ax_len.set_ylim(0, 1.25 * max(s["seq_len"] for s in stages))
        ax_rope.set_ylabel("RoPE base")
        if any(s.get("rope_theta") for s in stages):
            ax_rope.set_yscale("log")
        ax_rope.set_xlabel("cumulative pretraining tokens")
        ax_rope.xaxis.set_major_formatter(lambda v, _: fmt_tokens(v))
        ax_rope.set_xlim(0, max(start, 1))
        return to_svg(fig, "pretraining curriculum")
