"""Terminal output shared by the engines and the CLI: the rich console, and query results as a
table, CSV, JSON or Parquet. The ground floor: imports only rich and the stdlib (lazily, so that
`validate` and `plan` start fast), never an engine or the CLI."""

from __future__ import annotations

import sys


def console(stderr: bool = False, soft_wrap: bool = False):
    """Rich console; when output is not a terminal, wide enough that tables don't fold. While a job
    runs, its engines' output goes to the job's log (job_log.py) and ours to the terminal kept there."""
    from rich.console import Console

    from qwen3_recipe.job_log import terminal_stream
    term = terminal_stream(stderr)
    con = Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap, file=term)
    if not con.is_terminal:
        con.width = 200
    elif term is not None:  # rich sizes from fds 0-2, which now point at the log
        import contextlib
        import os
        with contextlib.suppress(OSError, ValueError):
            con.width = os.get_terminal_size(term.fileno()).columns
    return con


def print_query(rel, fmt: str, output: str | None) -> None:
    """A duckdb relation as a table on the console, or as csv/json (to `output` or stdout) or parquet."""
    if fmt == "parquet":
        if not output:
            raise SystemExit("error: --format parquet needs --output FILE")
        import pyarrow.parquet as pq
        pq.write_table(rel.to_arrow_table(), output)  # by this process: the query's connection cannot write
        return
    if fmt in ("csv", "json"):
        import csv
        import json
        rows = rel.fetchall()
        out = open(output, "w", newline="") if output else sys.stdout
        try:
            if fmt == "csv":
                writer = csv.writer(out)
                writer.writerow(rel.columns)
                writer.writerows(rows)
            else:
                json.dump([dict(zip(rel.columns, r)) for r in rows], out, default=str, indent=2)
                out.write("\n")
        finally:
            if output:
                out.close()
        return
    from rich.markup import escape
    from rich.table import Table
    table = Table(header_style="bold")
    for col in rel.columns:
        table.add_column(escape(col))
    for row in rel.fetchall():  # values are data, not markup: `web[edu>=3]` is a mixture key
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    console().print(table)
