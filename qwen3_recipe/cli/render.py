"""The CLI's own terminal output with rich: located problems, the plan table. The console, query
results and progress bars, which the engines print too, are in qwen3_recipe/console.py and
qwen3_recipe/progress.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwen3_recipe.console import console
from qwen3_recipe.units import format_count, format_flops

if TYPE_CHECKING:
    from qwen3_recipe.errors import Problem

STATUS_STYLE = {"cached": "[green]cached[/]", "changed": "[yellow]changed[/]", "new": "[cyan]to run[/]"}


def print_problems(problems: list["Problem"]) -> None:
    con = console(stderr=True, soft_wrap=True)
    for p in problems:
        where = f"[bold]{p.loc}[/]  " if p.loc else ""
        key = f"[cyan]{p.path}[/]: " if p.path else ""
        hint = f" [dim]({p.hint})[/]" if p.hint else ""
        con.print(f"{where}{key}[red]{_escape(p.message)}[/]{hint}")
    con.print(f"[red]{len(problems)} error{'s' if len(problems) != 1 else ''}[/]")


def _sufficiency(shortfalls: list[dict]) -> str:
    """A pretraining stage's data column: `ok`, the keys short of their need, and the keys whose
    supply is not known: a source without a declared size, a synth source or a label slice before its
    job has run in this run directory."""
    short = ", ".join(f"{_escape(s['source'])} {format_count(s['need'])}>{format_count(s['have'])}"
                      for s in shortfalls if s["have"] is not None)
    names = [_escape(s["source"]) for s in shortfalls if s["have"] is None]
    unknown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    parts = ([f"[red]short: {short}[/]"] if short else []) + ([f"[yellow]supply unknown: {unknown}[/]"]
                                                               if unknown else [])
    return ", ".join(parts) or "ok"


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)


def hours_text(h: float) -> str:
    """GPU-hours as the plan prints them."""
    return "-" if h == 0 else f"{h:,.3g}" if h < 1000 else f"{h:,.0f}"


def print_plan(view: dict) -> None:
    """The plan table from `plan_view` data (so a cached plan renders without the recipe)."""
    from rich.table import Table

    model, hw = view["model"], view["hardware"]
    title = (f"plan: {view['recipe']}  ({' <- '.join(view['files'])})  ->  {view['run_dir']}/\n"
             f"model {model['preset'] or 'custom'}: {model['total_params'] / 1e9:.4g}B params, "
             f"N = {model['compute_params'] / 1e9:.4g}B active (6·N·D)  |  "
             f"{hw['count']}x {hw['accelerator']} at MFU {hw['mfu']:g}")
    table = Table(title=title, title_justify="left", header_style="bold", caption_justify="left")
    for col, justify in (("job", "left"), ("kind", "left"), ("needs", "left"), ("tokens", "right"),
                         ("steps", "right"), ("FLOPs", "right"), ("GPU-h", "right"), ("data", "left"),
                         ("status", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    total_flops = total_hours = 0.0
    for job in view["jobs"]:
        est = job["estimate"]
        total_flops += est["flops"]
        total_hours += est["gpu_hours"]
        data = ""
        if job["kind"] == "pretrain":
            data = _sufficiency(job["shortfalls"])
        table.add_row(job["name"], job["kind"], ", ".join(job["deps"]),
                      format_count(est["tokens"]) if est["tokens"] else "",
                      f"{est['steps']:,}" if est["steps"] else "", format_flops(est["flops"]) if est["flops"] else "",
                      hours_text(est["gpu_hours"]), data, STATUS_STYLE[job["status"]])
    days = total_hours / hw["count"] / 24
    table.caption = (f"total {format_flops(total_flops)} FLOPs, {hours_text(total_hours)} GPU-hours "
                     f"= {days:,.3g} days on {hw['count']}x {hw['accelerator']}") + posttrain_comparison(view["jobs"])
    console().print(table)
    for job in view["jobs"]:
        if len(job.get("segments") or []) > 1:
            console().print(f"{job['name']} grows its sequence length: " + ", then ".join(
                f"{s['seq_len']:,} for {s['steps']:,} steps ({format_count(s['tokens'])} tokens)"
                for s in job["segments"]))
        if job.get("serving"):
            gpus = job["serving"]["gpus"]
            wall = hours_text(job["estimate"]["gpu_hours"] / gpus)
            console().print(f"{job['name']} served by {job['serving']['text']}: {wall} hours wall-clock on {gpus:,} "
                            f"GPU{'s' if gpus > 1 else ''}", highlight=False)
        if job.get("trainer"):
            t = job["trainer"]
            devices = f"{t['gpus']:,} GPU{'s' if t['gpus'] > 1 else ''}"
            hours = (f"{hours_text(t['rollout_gpu_hours'])} GPU-h rollouts + "
                     f"{hours_text(t['update_gpu_hours'])} GPU-h updates")
            if t["rollout_gpus"]:  # servers sample while the trainers wait, and the other way round
                wall = t["rollout_gpu_hours"] / t["rollout_gpus"] + t["update_gpu_hours"] / t["gpus"]
                held = hours_text(wall * (t["gpus"] + t["rollout_gpus_held"]))
                where = (f"{devices} for the trainer and {t['rollout_gpus']:,} for its rollout servers, {hours} = "
                         f"{hours_text(wall)} hours wall-clock (both held: {held} GPU-h)")
            else:
                shared = "held-out sampling" if job["kind"] == "distill_offpolicy" else "rollout engines"
                where = (f"{devices} shared by the trainer and its {shared} (no dedicated rollout GPUs), {hours} = "
                         f"{hours_text(job['estimate']['gpu_hours'] / t['gpus'])} hours wall-clock")
            console().print(f"{job['name']} trains on {t['text']}: {where}", highlight=False, soft_wrap=True)
    for name, group in view.get("languages", {}).items():
        ranked = sorted(group["shares"].items(), key=lambda kv: -kv[1])
        console().print(f"data.languages.{name}: {len(ranked)} languages of {group['family']}, shares "
                        f"{group['rule']} (of the group's weight; sources {name}_<code>): " + ", ".join(
                            f"{code} {share:.1%}" for code, share in ranked), soft_wrap=True, highlight=False)
    for warning in view.get("warnings", []):
        console().print(f"[yellow]warning[/] {warning}", soft_wrap=True, highlight=False)


RL_KINDS = ("reasoning_rl", "general_rl")
DISTILL_KINDS = ("distill_teacher", "distill_offpolicy", "distill_onpolicy")  # the teacher's pass is distillation's
TRAINS_ON_TEACHER = ("distill_offpolicy",)  # its tokens are the teacher pass's, counted there


def posttrain_comparison(jobs: list[dict]) -> str:
    """RL and distillation side by side (rollout / teacher tokens and GPU-hours), with the Qwen3
    report's reference point: on-policy distillation reached better scores than RL at about 1/10 of
    RL's GPU hours (section 4.5, Table 21)."""
    groups = {"RL": [j for j in jobs if j["kind"] in RL_KINDS],
              "distillation": [j for j in jobs if j["kind"] in DISTILL_KINDS]}
    hours = {label: sum(j["estimate"]["gpu_hours"] for j in members) for label, members in groups.items()}
    parts = [f"{label} {hours_text(hours[label])} GPU-h over "
             f"{format_count(sum(j['estimate']['tokens'] for j in members if j['kind'] not in TRAINS_ON_TEACHER))} "
             "generated tokens "
             f"({', '.join(j['name'].split('.', 1)[1] for j in members)})"
             for label, members in groups.items() if members]
    if not parts:
        return ""
    ratio = f"; distillation/RL = {hours['distillation'] / hours['RL']:.2g}" if all(hours.values()) else ""
    return (f"\npost-training: {'; '.join(parts)}{ratio} "
            "(Qwen3 report: on-policy distillation beat RL at ~1/10 of RL's GPU hours)")
