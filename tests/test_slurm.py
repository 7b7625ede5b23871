"""The Slurm lowering: what `run --executor slurm` would submit, against golden scripts (a fake
`sbatch` on PATH records each submission; rewrite with `pytest --update-golden`)."""

from __future__ import annotations

import json
import os
import sys

from conftest import REPO, run_cli

FAKE_SBATCH = """#!/bin/bash
# records its arguments and the script, answers like `sbatch --parsable`
n=$(($(ls "$SBATCH_LOG" | wc -l) + 1001))
script="${@: -1}"
{ echo "ARGS: ${@:1:$#-1}"; cat "$script"; } > "$SBATCH_LOG/$n"
echo "$n"
"""


def normalise(text: str, run_dir) -> str:
    return (text.replace(str(run_dir.resolve()), "RUN_DIR").replace(sys.executable, "PYTHON")
            .replace(str(REPO), "REPO"))


def test_slurm_submissions_follow_the_dag(tmp_path, update_golden):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir(), log.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    run = tmp_path / "run"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SBATCH_LOG": str(log)}
    proc = run_cli("run", "recipes/tiny.yaml", "-o", str(run), "--only", "data", "--executor", "slurm",
                   "--set", "execution.slurm.partition=cpu", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    submitted = {p.name: normalise(p.read_text(), run) for p in sorted(log.iterdir())}
    jobs = [line.split(":")[0].removeprefix("submitted ") for line in proc.stdout.splitlines()
            if line.startswith("submitted ")]
    assert jobs[:3] == ["data.web", "data.code", "data.math"] and jobs[-1] == "mix.s3_long_context"
    ids = {job: json.loads((run / "jobs" / job / "submitted.json").read_text())["slurm_job_id"] for job in jobs}
    dedup = submitted[ids["data.dedup"]]
    assert f"--dependency=afterok:{ids['data.web']}:{ids['data.code']}:{ids['data.math']}" in dedup
    assert "--only data.dedup --executor local" in dedup and "#SBATCH --partition=cpu" in dedup
    assert "--set execution.slurm.partition=cpu" in dedup
    golden = REPO / "tests/golden/slurm/tiny-data.txt"
    text = "\n".join(f"=== {job}\n{submitted[ids[job]]}" for job in jobs)
    if update_golden:
        golden.write_text(text)
    assert golden.read_text() == text
