"""Ids are unique within a source, or its data job says so. Two rows with one id would get fates
provenance cannot tell apart, so a `data.<source>` job either fails naming both rows
(`on_duplicate_id: fail`, checked on the read step's `documents` shards once the pipeline has run)
or resolves them as declared: an id scan (the reader recording only id and place) finds the later
rows of each repeated id, in file order, and the read drops them (`keep_first`) or renames them
`<id>#2`, `#3`, ... (`suffix`), each with a read-step decision (reason `duplicate_id`, the id it
had in `details`). The check runs after every policy. Imports no engine at module load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwen3_recipe.compiler.plan import Plan, PlannedJob

DUPLICATES_FILE = "duplicates.json"


class DuplicateIdError(RuntimeError):
    """A source's id repeats (on_duplicate_id: fail): both rows named."""


def later_rows(path: str | Path) -> dict[tuple[str, int], tuple[str, str]]:
    """{(file, offset): (id in the run, "dropped" | "modified")} for the later rows of repeated ids."""
    data = json.loads(Path(path).read_text())
    return {(file, offset): (new_id, action) for file, offset, new_id, action in data["later"]}


def _repeats(files: list[str]) -> list[tuple[str, list[tuple[str, int]]]]:
    """(id, [(file, offset), ...] in file order) for each id with more than one row."""
    import duckdb
    if not files:
        return []
    with duckdb.connect() as con:
        rows = con.execute("""
            select doc_id, list(struct_pack(f := file, o := "offset") order by file, "offset", rank)
            from read_parquet(?, union_by_name = true) group by doc_id having count(*) > 1 order by doc_id""",
                           [files]).fetchall()
    return [(doc_id, [(place["f"], place["o"]) for place in places]) for doc_id, places in rows]


def _marked_ids(files: list[str]) -> set[str]:
    """Ids with a `#` in them: those a rename could collide with."""
    import duckdb
    with duckdb.connect() as con:
        rows = con.execute("select distinct doc_id from read_parquet(?, union_by_name = true) "
                           "where contains(doc_id, '#')", [files]).fetchall()
    return {r[0] for r in rows}


def _shards(folder: str) -> list[str]:
    return sorted(str(f) for f in Path(folder, "documents").glob("*.parquet"))


def resolve_ids(p: PlannedJob, plan: Plan) -> None:
    """After the id scan: write which later rows the read drops or renames."""
    from qwen3_recipe.compiler.lowerers import load_lowered
    reader = load_lowered(p, plan)["reader"]
    shards = _shards(reader["ids_scan"])
    repeats = _repeats(shards)
    action = "dropped" if reader["on_duplicate_id"] == "keep_first" else "modified"
    taken = {doc_id for doc_id, _ in repeats} | (_marked_ids(shards) if repeats else set())
    later: list[list[Any]] = []
    for doc_id, places in repeats:
        for n, (file, offset) in enumerate(places[1:], 2):
            new_id = f"{doc_id}#{n}"
            while new_id in taken:  # a natural id of that form already: renamed ids stay unique
                new_id += "'"
            taken.add(new_id)
            later.append([file, offset, new_id, action])
    target = Path(reader["duplicates"])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"policy": reader["on_duplicate_id"], "later": later}) + "\n")
    tmp.replace(target)


def check_unique_ids(p: PlannedJob, plan: Plan) -> None:
    """After the read: no id of this job's documents repeats, or the job fails naming both rows."""
    from qwen3_recipe.compiler.lowerers import load_lowered
    lowered = load_lowered(p, plan)
    reader = lowered["reader"]
    repeats = _repeats(_shards(lowered["provenance"]["folder"]))
    if not repeats:
        return
    doc_id, places = repeats[0]
    unit = "line" if reader["format"] == "jsonl" else "row"
    folder = Path(reader.get("data_folder") or "")

    def where(file: str, offset: int) -> str:
        return f"{folder / file if reader['format'] == 'jsonl' else file} {unit} {offset + 1}"

    more = f" ({len(repeats)} ids repeat in all)" if len(repeats) > 1 else ""
    raise DuplicateIdError(
        f"id {doc_id!r} of source {lowered['source']} occurs twice: {where(*places[0])} and {where(*places[1])}"
        f"{more}; fix the data or set data.sources.{lowered['source']}.on_duplicate_id: keep_first or suffix")
