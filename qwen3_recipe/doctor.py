"""`qwen3-recipe doctor`: versions, which engines import, whether a GPU is visible."""

from __future__ import annotations

import importlib
import platform
import shutil
import time
from importlib import metadata

ENGINES = [("torch", "torch"), ("torchtitan", "torchtitan.models.qwen3"), ("vllm", "vllm"),
           ("datatrove", "datatrove"), ("duckdb", "duckdb"), ("transformers", "transformers"),
           ("datasets", "datasets"), ("math-verify", "math_verify"), ("tokenizers", "tokenizers"),
           ("spacy", "spacy")]


def _version(dist: str) -> str:
    for name in (dist, f"{dist}-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "-"


def print_doctor() -> int:
    from rich.table import Table

    from qwen3_recipe import __version__
    from qwen3_recipe.console import console

    table = Table(title=f"qwen3-recipe {__version__} on Python {platform.python_version()} "
                        f"({platform.machine()})", title_justify="left", header_style="bold")
    for col in ("package", "version", "imports", "seconds"):
        table.add_column(col)
    failures = 0
    for dist, module in ENGINES:
        started = time.time()
        try:
            importlib.import_module(module)
            status = "[green]yes[/]"
        except Exception as exc:  # an engine that fails to import is what doctor reports
            status = f"[red]no: {type(exc).__name__}: {str(exc)[:80]}[/]"
            failures += 1
        table.add_row(dist, _version(dist), status, f"{time.time() - started:.1f}")
    con = console()
    con.print(table)
    gpu = "no"
    try:
        import torch
        if torch.cuda.is_available():
            gpu = f"yes: {torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    except Exception:
        pass
    con.print(f"GPU visible: {gpu}  (nvidia-smi: {'found' if shutil.which('nvidia-smi') else 'not found'})")
    return 1 if failures else 0
