"""The plan as a layered DAG in plain SVG: each job sits one row below its deepest dependency,
rows are ordered by the mean position of each job's parents (one barycentre pass), wide rows wrap,
and edges implied by a longer path (the transitive reduction) are left out so that e.g. the
tokenizer does not draw a line into every stage. Colour is the job's status."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from qwen3_recipe.report.rundata import JobInfo

BOX_W, BOX_H, GAP_X, GAP_Y, MAX_ROW, PAD = 178, 38, 18, 34, 6, 10
STATUS_COLORS = {"done": ("#d8f0d8", "#2e7d32"), "stale": ("#fff1cc", "#b7791f"),
                 "started": ("#dbe9ff", "#2b5fad"), "to run": ("#f1f1f1", "#8a8a8a")}


@dataclass
class Placed:
    job: JobInfo
    x: float
    y: float


def layers(jobs: list[JobInfo]) -> list[list[JobInfo]]:
    """Longest-path layering (deps always in an earlier layer), barycentre-ordered."""
    by_name = {j.name: j for j in jobs}
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset = frozenset()) -> int:
        if name not in depth:
            parents = [d for d in by_name[name].deps if d in by_name and d not in seen]
            depth[name] = 1 + max((level(d, seen | {name}) for d in parents), default=-1)
        return depth[name]

    rows: list[list[JobInfo]] = [[] for _ in range(1 + max((level(j.name) for j in jobs), default=-1))]
    for j in jobs:
        rows[depth[j.name]].append(j)
    pos: dict[str, float] = {}
    for row in rows:
        def centre(j: JobInfo) -> float:
            known = [pos[d] for d in j.deps if d in pos]
            return sum(known) / len(known) if known else -1.0
        row.sort(key=centre)
        for i, j in enumerate(row):
            pos[j.name] = (i + 0.5) / len(row)
    return rows


def reduced_edges(jobs: list[JobInfo]) -> list[tuple[str, str]]:
    """(dep, job) edges not implied by another path."""
    deps = {j.name: set(d for d in j.deps if d != j.name) for j in jobs}
    memo: dict[str, set[str]] = {}

    def ancestors(name: str) -> set[str]:
        if name not in memo:
            memo[name] = set()  # guards a (never expected) cycle
            found = set(deps.get(name, ()))
            for d in list(found):
                found |= ancestors(d)
            memo[name] = found
        return memo[name]

    edges = []
    for j in jobs:
        direct = [d for d in deps[j.name] if d in deps]
        implied = set().union(*(ancestors(d) for d in direct)) if direct else set()
        edges += [(d, j.name) for d in sorted(direct) if d not in implied]
    return edges


def place(jobs: list[JobInfo]) -> tuple[dict[str, Placed], float, float]:
    placed: dict[str, Placed] = {}
    y, width = PAD, 0.0
    for row in layers(jobs):
        for start in range(0, len(row), MAX_ROW):
            chunk = row[start:start + MAX_ROW]
            for i, j in enumerate(chunk):
                placed[j.name] = Placed(j, PAD + i * (BOX_W + GAP_X), y)
            width = max(width, len(chunk) * (BOX_W + GAP_X) - GAP_X)
            y += BOX_H + GAP_Y
    row_w: dict[float, float] = {}
    for p in placed.values():
        row_w[p.y] = max(row_w.get(p.y, 0.0), p.x + BOX_W - PAD)
    for p in placed.values():  # centre each row
        p.x += (width - row_w[p.y]) / 2
    return placed, width + 2 * PAD, y - GAP_Y + PAD


def _tooltip(j: JobInfo) -> str:
    lines = [j.name, f"kind: {j.kind}", f"status: {j.status}"]
    if j.finished_at:
        lines.append(f"finished: {j.finished_at}")
    est = j.estimate
    if est.get("tokens"):
        lines.append(f"tokens: {est['tokens']:,}")
    if est.get("gpu_hours"):
        lines.append(f"GPU-hours (est.): {est['gpu_hours']:.3g}")
    if j.deps:
        lines.append("after: " + ", ".join(j.deps))
    return "\n".join(lines)


def dag_svg(jobs: list[JobInfo]) -> Markup:
    if not jobs:
        return Markup("")
    placed, width, height = place(jobs)
    parts = [f'<svg class="dag" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
             'role="img" aria-label="job DAG">',
             '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>']
    for src, dst in reduced_edges(jobs):
        a, b = placed[src], placed[dst]
        x1, y1, x2, y2 = a.x + BOX_W / 2, a.y + BOX_H, b.x + BOX_W / 2, b.y
        mid = (y1 + y2) / 2
        curve = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2 - 1:.1f}"
        parts.append(f'<path class="edge" d="{curve}" fill="none" stroke="#999" stroke-width="1.2" '
                     'marker-end="url(#dag-arrow)"/>')
    for p in placed.values():
        fill, stroke = STATUS_COLORS.get(p.job.status, STATUS_COLORS["to run"])
        parts.append(f'<g class="job {escape(p.job.status.replace(" ", "-"))}" data-job="{escape(p.job.name)}">'
                     f'<title>{escape(_tooltip(p.job))}</title>'
                     f'<rect x="{p.x:.1f}" y="{p.y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
                     f'stroke="{stroke}" stroke-width="1.5"/>'
                     f'<text x="{p.x + BOX_W / 2:.1f}" y="{p.y + 16:.1f}" text-anchor="middle" font-size="12.5" '
                     f'font-weight="600">{escape(_fit(p.job.name, 24))}</text>'
                     f'<text x="{p.x + BOX_W / 2:.1f}" y="{p.y + 30:.1f}" text-anchor="middle" font-size="10.5" '
                     f'fill="#555">{escape(p.job.kind)} · {escape(p.job.status)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _fit(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
