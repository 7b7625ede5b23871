"""benchmarks/README.md's like-for-like table is what benchmarks/table.py prints from the recorded results, every
recorded figure has >= 3 repeats and the command that printed it, and a missing record shows as missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def table():
    sys.path.insert(0, str(BENCHMARKS))
    import table
    return table


def spreads(value):
    """Every record.spread dict inside a result."""
    if isinstance(value, dict):
        if {"median", "min", "max", "n"} <= value.keys():
            yield value
        for v in value.values():
            yield from spreads(v)
    elif isinstance(value, list):
        for v in value:
            yield from spreads(v)


def test_readme_tables_are_the_recorded_results(table) -> None:
    text = table.README.read_text()
    for name in table.TABLES:
        begin, end = table.markers(name)
        block = text.split(begin, 1)[1].split(end, 1)[0].strip()
        assert block == table.render(name), f"README's {name} table is stale: run benchmarks/table.py --write"


def test_the_project_readme_types_no_benchmark_table(table) -> None:
    """Benchmark figures live in benchmarks/README.md's generated tables; the project README points there
    (a hand-typed copy went stale once)."""
    readme = (BENCHMARKS.parent / "README.md").read_text()
    assert readme.count("## Benchmarks") == 1 and "benchmarks/README.md" in readme
    assert "| benchmark | target | measured" not in readme


def test_a_failed_correctness_check_misses_the_target(table) -> None:
    """A like-for-like check that failed (different answers, tokens or signatures) is a miss whatever the speed."""
    for key, field in (("3a", "same_answer_as_exclusion_files"), ("3c", "same_answer"),
                       ("3d-generated", "identical_signatures"), ("4a", "first_document_tokens_equal")):
        rec = json.loads((BENCHMARKS / "results" / f"{key}.json").read_text())["result"]
        fmt = next(f for _, k, _, f in table.ROWS if k == key)
        assert "misses the target" in fmt(rec | {field: False})[1], key


def test_every_recorded_row_has_repeats_and_its_command(table) -> None:
    keys = [key for _, key, _, _ in table.ROWS]
    recorded = {p.stem: json.loads(p.read_text()) for p in (BENCHMARKS / "results").glob("*.json")}
    assert set(recorded) <= set(keys), f"records without a row: {set(recorded) - set(keys)}"
    for key, rec in recorded.items():
        script = rec["command"].split(".venv/bin/python ", 1)[1].split()[0]
        assert (BENCHMARKS.parent / script).is_file(), rec["command"]
        assert "--record" not in rec["command"]
        found = list(spreads(rec["result"]))
        assert found and all(s["n"] >= 3 for s in found), f"{key}: fewer than 3 repeats: {found}"
        assert found and all(s["min"] <= s["median"] <= s["max"] for s in found)


def test_a_missing_record_is_shown_missing(table, monkeypatch) -> None:
    monkeypatch.setattr(table, "load", lambda key: None)
    rows = [r for name in table.TABLES for r in table.render(name).splitlines()[2:]]
    assert len(rows) == len(table.ROWS) and all("not recorded" in r for r in rows)


def test_recorder_writes_the_command_without_record(tmp_path, monkeypatch) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    import record
    monkeypatch.setattr(record, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / "fineweb_chain.py"), "--docs", "20", "--record"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = record.Recorder("3d-generated", True).save({"speedup": record.spread([1.0, 3.0, 2.0])})
    rec = json.loads(path.read_text())
    assert rec["command"] == "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fineweb_chain.py --docs 20"
    assert rec["result"]["speedup"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert record.Recorder("x", False).save({}) is None
