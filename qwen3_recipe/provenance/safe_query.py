"""`qwen3-recipe query`: a user's SQL over a run's provenance, which can read and cannot write.

Three locks, because each alone leaves a door: the database is opened read-only (no CREATE, INSERT,
UPDATE); DuckDB's file access is limited to the run directory and then locked (no reading the
host's files, no ATTACH elsewhere, no INSTALL/LOAD); and only SELECT-like statements run, since
DuckDB lets `COPY ... TO` and `EXPORT DATABASE` write inside an allowed directory, the provenance
database itself included. Results reach a file only through `--output`, written by this process."""

from __future__ import annotations

from pathlib import Path

import duckdb

READING = {"SELECT", "EXPLAIN"}  # SHOW, DESCRIBE, SUMMARIZE, FROM-first and VALUES parse as SELECT


class QueryRefused(ValueError):
    """A query that cannot run here, with the one line that says why."""


def connect_read_only(db: Path) -> duckdb.DuckDBPyConnection:
    """The provenance database, read-only, with file access confined to its run directory."""
    run = str(db.resolve().parent).replace("'", "''")
    con = duckdb.connect(str(db), read_only=True)
    con.execute(f"set allowed_directories = ['{run}/']")
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


def checked(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The SQL if every statement only reads; QueryRefused otherwise (empty SQL included)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(str(exc).strip()) from None
    if not statements:
        raise QueryRefused("empty query: the SQL holds no statement (only whitespace, ';' or comments)")
    writes = sorted({s.type.name for s in statements} - READING)
    if writes:
        hint = ("to save results, use --format csv|json|parquet --output FILE" if {"COPY", "EXPORT"} & set(writes)
                else "it reads the run's provenance and its own files only")
        raise QueryRefused(f"query is read-only: {', '.join(writes)} statements are refused ({hint})")
    return sql


def one_line(exc: Exception) -> str:
    """DuckDB's message, first line (a permission error's continuation lines name the setting)."""
    text = str(exc).strip()
    return text.splitlines()[0] if isinstance(exc, duckdb.PermissionException) else text
