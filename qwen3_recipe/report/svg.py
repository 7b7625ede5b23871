"""Matplotlib figures as inline SVG for one HTML page: text kept as text (small, selectable), no
XML prolog, DOCTYPE, metadata or namespace URLs, ids made unique per chart (many SVGs share one
document) and the ones nothing references dropped. No pyplot: figures are plain objects, so
nothing global is touched and no GUI backend is loaded."""

from __future__ import annotations

import io
import itertools
import re

from markupsafe import Markup

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
           "#ccb974", "#64b5cd"]
STYLE = {"svg.fonttype": "none", "font.size": 9.5, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False, "axes.titlesize": 10.5,
         "axes.titleweight": "bold"}
_counter = itertools.count(1)


def figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained")


def styled():
    """The report's matplotlib style, for building a figure inside `with styled():`."""
    import matplotlib as mpl
    from cycler import cycler
    return mpl.rc_context({**STYLE, "axes.prop_cycle": cycler(color=PALETTE)})


def to_svg(fig, label: str) -> Markup:
    import matplotlib as mpl
    key = f"c{next(_counter)}"
    buf = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": key}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return Markup(clean(buf.getvalue(), key, label))


def clean(text: str, key: str, label: str) -> str:
    text = text[text.index("<svg"):]
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r'\s+version="1\.1"', "", text, count=1)
    text = re.sub(r"<style[^>]*>.*?</style>", "", text, flags=re.S)
    text = text.replace("xlink:href=", "href=")
    used = set(re.findall(r'(?:href="#|url\(#)([^")]+)', text))

    def rename(m: re.Match) -> str:
        return f' id="{key}-{m.group(1)}"' if m.group(1) in used else ""
    text = re.sub(r'\s+id="([^"]+)"', rename, text)
    text = re.sub(r'(href="#|url\(#)([^")]+)', lambda m: f"{m.group(1)}{key}-{m.group(2)}", text)
    text = re.sub(r"\n\s*", "\n", text)
    return text.replace("<svg", f'<svg class="chart" role="img" aria-label="{_attr(label)}"', 1)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def fmt_tokens(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"
