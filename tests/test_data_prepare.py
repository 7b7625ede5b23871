"""Data jobs on real datatrove and DuckDB: the right documents dropped for the right reasons,
contamination found, malformed lines counted, the provenance invariants hold."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from conftest import run_cli
from corpora import write_project
from qwen3_recipe.provenance.check import violations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("proj")
    recipe, fates = write_project(root)
    run = root / "run"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "data.web", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run, fates


def fate_table(run) -> dict[str, tuple[str, str]]:
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        rows = con.sql("select doc_id, step, reason from decisions where decision = 'dropped'").fetchall()
    return {doc_id: (step, reason) for doc_id, step, reason in rows}


def test_documents_are_dropped_for_the_right_reasons(prepared):
    run, fates = prepared
    drops = fate_table(run)
    for doc_id, fate in fates.items():
        if fate == "kept":
            assert doc_id not in drops, (doc_id, drops.get(doc_id))
        elif fate == "repetition":
            assert drops[doc_id][0] == "gopher_repetition", (doc_id, drops.get(doc_id))
        elif fate == "contaminated":
            assert drops[doc_id] == ("decontamination", "contaminated"), doc_id
        else:
            assert drops[doc_id][1] == fate, (doc_id, drops.get(doc_id))


def test_kept_documents_are_written(prepared):
    run, fates = prepared
    out = run / "jobs/data.web/output"
    kept = duckdb.sql(f"select count(*) from read_json_auto('{out}/*.jsonl.gz')").fetchall()[0][0]
    assert kept == sum(1 for f in fates.values() if f == "kept")


def test_every_planted_contamination_is_found_and_nothing_clean(prepared):
    run, fates = prepared
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        hits = con.sql("select doc_id, benchmark, item_id, position from contamination").fetchall()
    planted = {d for d, f in fates.items() if f == "contaminated"}
    assert {h[0] for h in hits} == planted
    assert {h[2] for h in hits} == {"b0", "b1", "b2"} and all(h[1] == "bench" for h in hits)


def test_provenance_invariants_hold(prepared):
    run, _ = prepared
    assert not any(violations(run).values()), violations(run)
    proc = run_cli("check", str(run))
    assert proc.returncode == 0 and "FAIL" not in proc.stdout


def test_sql_answers_drops_per_filter_per_source_in_one_statement(prepared):
    run, fates = prepared
    proc = run_cli("query", str(run), "select step, source, count(*) as n from decisions "
                   "where decision = 'dropped' group by all order by step", "--format", "json")
    import json
    rows = {(r["step"], r["source"]): r["n"] for r in json.loads(proc.stdout)}
    assert rows[("read", "web")] == 2  # one malformed line, one empty document
    assert rows[("decontamination", "web")] == 3
    proc = run_cli("report", "funnel", str(run))
    assert proc.returncode == 0 and "gopher_quality" in proc.stdout


def test_rerun_skips_the_finished_job(prepared, tmp_path):
    run, _ = prepared
    recipe = run.parent / "recipes/data.yaml"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "data.web", cwd=run.parent)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout


def test_slurm_without_sbatch_is_a_located_error(tmp_path):
    from corpora import write_project
    recipe, _ = write_project(tmp_path / "p")
    proc = run_cli("run", str(recipe), "-o", str(tmp_path / "r"), "--only", "data.web", "--executor", "slurm",
                   cwd=tmp_path / "p", env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--set execution.executor=slurm" in proc.stderr and "sbatch" in proc.stderr


def test_language_filter_without_its_local_model_is_a_located_error(tmp_path):
    """lid.176.bin is never downloaded: a missing model_path names the setting. (A run with a real
    model is not tested: fasttext-numpy2-wheel here fails to train even a toy model - NaN.)"""
    from corpora import write_project
    recipe, _ = write_project(tmp_path / "p")
    text = recipe.read_text().replace("    - {type: gopher_quality}\n",
                                      "    - {type: language, model_path: ../missing.bin, languages: [en]}\n")
    recipe.write_text(text)
    proc = run_cli("run", str(recipe), "-o", str(tmp_path / "r"), "--only", "data.web", cwd=tmp_path / "p")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "data.filters.2.model_path" in proc.stderr and "nothing is downloaded" in proc.stderr
    assert "recipes/data.yaml:11:36" in proc.stderr  # the model_path value itself


def test_thinned_kept_rows_keep_every_drop_and_exact_counts(tmp_path):
    from corpora import write_project
    recipe, fates = write_project(tmp_path / "p", extra="outputs: {provenance: {kept_sample_rate: 0.3}}")
    run = tmp_path / "r"
    assert run_cli("run", str(recipe), "-o", str(run), "--only", "data.web", cwd=tmp_path / "p").returncode == 0
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        dropped = {r[0] for r in con.sql("select doc_id from decisions where decision = 'dropped'").fetchall()}
        kept_rows = con.sql("select count(*) from decisions where decision = 'kept' and step = 'length'").fetchall()[0][0]
        kept_count = con.sql("select kept from step_counts where step = 'length'").fetchall()[0][0]
    assert dropped == {d for d, f in fates.items() if f != "kept"}  # drops are never thinned
    assert 0 < kept_rows < kept_count  # kept rows are
    assert not any(violations(run, thinned=True).values())
    assert run_cli("check", str(run)).returncode == 0


def test_datatrove_decontamination_method_drops_the_planted_documents(tmp_path):
    from corpora import write_project
    recipe, fates = write_project(tmp_path / "p", decont="{benchmarks: [bench], method: datatrove, n: 13}")
    run = tmp_path / "r"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "data.web", cwd=tmp_path / "p")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        hits = con.sql("select doc_id, benchmark from contamination").fetchall()
    assert {d for d, _ in hits} == {d for d, f in fates.items() if f == "contaminated"}
    assert {b for _, b in hits} == {"bench"}


def _same(ran, compiled) -> bool:
    """A compiled value against what datatrove's executor.json recorded (tuples become lists)."""
    return json.loads(json.dumps(ran)) == json.loads(json.dumps(compiled))


def test_what_ran_is_the_compiled_artifact(prepared):
    """datatrove's own record of the pipeline it ran (logs/executor.json) against lowered.json: the
    reader, every filter block's arguments, decontamination, the writer, tasks and workers."""
    run, _ = prepared
    folder = run / "jobs/data.web"
    low = json.loads((folder / "lowered.json").read_text())["lowered"]
    ran = json.loads((folder / "logs/executor.json").read_text())
    assert ran["tasks"] == low["tasks"] == 1 and low["executor"] == {"type": "local", "workers": 1}
    assert ran["workers"] == min(low["tasks"], low["executor"]["workers"])
    reader, *steps, writer = ran["pipeline"]
    assert f"path='{low['reader']['data_folder']}'" in reader["data_folder"]
    for key in ("glob_pattern", "text_key", "id_key", "limit"):
        assert reader[key] == low["reader"][key], key
    assert reader["source"] == low["source"] == "web"
    blocks = {b["index"]: b for b in low["filters"]}
    assert [s["step_index"] for s in steps] == [*sorted(blocks), len(blocks) + 1]
    assert [b["type"] for b in low["filters"]] == ["length", "gopher_repetition", "gopher_quality"]
    for step in steps[:-1]:
        block = blocks[step["step_index"]]
        assert step["step_name"] == block["name"]
        assert step["kept_sample_rate"] == low["provenance"]["kept_sample_rate"]
        assert step["prov_dir"] == low["provenance"]["folder"]
        for key, value in block["args"].items():
            if key != "language":  # the shared word tokenizer, an object
                assert _same(step["inner"][key], value), (block["name"], key, step["inner"][key], value)
    decont = steps[-1]
    assert decont["step_name"] == "decontamination" and decont["inner"]["action"] == low["decontamination"]["action"]
    assert Path(decont["inner"]["index_path"]).is_file()
    assert f"path='{low['writer']['output_folder']}'" in writer["output_folder"]
    from string import Template  # datatrove keeps the file name as a Template: compare what it wrote
    written = {f.name for f in Path(low["writer"]["output_folder"]).iterdir()}
    assert written == {Template(low["writer"]["output_filename"]).substitute(rank="00000")}


def test_run_obeys_an_edited_artifact(tmp_path):
    """`run` builds the pipeline from lowered.json, not from the recipe: raise the length filter's
    bound there and every document is dropped by it."""
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.compiler.rundir import compile_run_dir
    from qwen3_recipe.data.runner import run_prepare
    from qwen3_recipe.recipe.validate import load_recipe
    recipe, fates = write_project(tmp_path / "p")
    plan = make_plan(load_recipe(recipe), tmp_path / "run")
    compile_run_dir(plan)
    path = tmp_path / "run/jobs/data.web/lowered.json"
    artifact = json.loads(path.read_text())
    length = artifact["lowered"]["filters"][0]
    assert length["type"] == "length" and length["args"]["min_chars"] == 100
    length["args"]["min_chars"] = 10**6
    path.write_text(json.dumps(artifact))
    run_prepare(plan["data.web"], plan)
    ran = json.loads((tmp_path / "run/jobs/data.web/logs/executor.json").read_text())
    assert ran["pipeline"][1]["inner"]["min_chars"] == 10**6
    with duckdb.connect(str(tmp_path / "run/provenance.duckdb"), read_only=True) as con:
        kept = con.sql("select count(*) from decisions where decision = 'kept' and step = 'length'").fetchall()[0][0]
        by_length = con.sql("select count(*) from decisions where step = 'length' and decision = 'dropped'").fetchall()
    assert kept == 0 and by_length[0][0] == sum(1 for f in fates.values() if f not in ("malformed", "empty"))


def test_a_truncated_gzip_shard_is_one_line_naming_the_file(tmp_path):
    """A cut .jsonl.gz: the terminal shows the job's failure naming the file and the line reached,
    and the task log that holds the traceback; no worker traceback on the terminal."""
    import gzip

    from corpora import write_project
    recipe, _ = write_project(tmp_path / "p", files=2)
    web = tmp_path / "p/datasets_spec/web"
    second = sorted(web.iterdir())[1]
    packed = gzip.compress(second.read_bytes())
    second.unlink()
    cut = web / f"{second.name}.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    for workers in ("1", "2"):  # in-process and in worker processes
        run = tmp_path / f"r{workers}"
        proc = run_cli("run", str(recipe), "-o", str(run), "--only", "data.web",
                       "--set", f"execution.workers={workers}", cwd=tmp_path / "p")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "Traceback" not in out, out
        failed = [line for line in out.splitlines() if line.startswith("failed data.web")]
        assert len(failed) == 1 and f"cannot read {cut} at line " in failed[0] and "EOFError" in failed[0], out
        log = next(line for line in out.splitlines() if line.strip().startswith("log: ")).split()[1]
        assert Path(log).name == "task_00001.log" and "Traceback" in Path(log).read_text()
        assert len([line for line in out.splitlines() if line.strip() and not line.startswith("─")]) == 2, out
