"""What a run directory says without its provenance database: the manifest, each job's config
(`jobs/<job>/job.json`), whether it finished (`done.json` with the same fingerprint) and its
training metrics (`metrics.jsonl`). Every reader tolerates a partial run: a missing or half
written file reads as nothing."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRETRAIN_KINDS = ("pretrain",)
SFT_KINDS = ("sft", "fusion")
RL_KINDS = ("reasoning_rl", "general_rl")
DISTILL_KINDS = ("distill_offpolicy", "distill_onpolicy")
LOSS_KEYS = ("loss_metrics/global_avg_loss", "loss")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Metric rows by step; a resumed stage logs some steps twice (the last row wins); a line
    being written right now (no closing brace yet) or a corrupt one is skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)]


@dataclass
class JobInfo:
    name: str
    kind: str
    groups: list[str]
    deps: list[str]
    fingerprint: str
    estimate: dict[str, Any]
    config: dict[str, Any]
    status: str  # done | stale (finished with another fingerprint) | started | to run
    finished_at: str | None = None

    @property
    def stage(self) -> str:
        return self.name.split(".", 1)[-1]


@dataclass
class RunInfo:
    run_dir: Path
    recipe: str
    recipe_files: list[str]
    overrides: list[str]
    packages: dict[str, str]
    jobs: list[JobInfo] = field(default_factory=list)

    def of_kind(self, *kinds: str) -> list[JobInfo]:
        return [j for j in self.jobs if j.kind in kinds]

    def metrics(self, job: JobInfo) -> list[dict[str, Any]]:
        return read_metrics(self.run_dir / "jobs" / job.name / "metrics.jsonl")

    def lowered(self, job: JobInfo) -> dict[str, Any]:
        """What `compile` told the engine (`lowered.json`), if it is this version's."""
        artifact = read_json(self.run_dir / "jobs" / job.name / "lowered.json") or {}
        return artifact.get("lowered") or {} if artifact.get("fingerprint") == job.fingerprint else {}

    def resolved(self, *path: str) -> Any:
        """A value of the resolved recipe (`recipe.lock.yaml`), e.g. a stage's mixture name, which
        no job's config holds (the mix job holds the mixture itself)."""
        import yaml
        try:
            node = yaml.safe_load((self.run_dir / "recipe.lock.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return None
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    def command(self, only: str) -> str:
        """The command that fills a section, e.g. `qwen3-recipe run recipes/tiny.yaml -o runs/tiny --only data`."""
        recipe = self.recipe_files[-1] if self.recipe_files else "RECIPE"
        sets = [arg for o in self.overrides for arg in ("--set", o)]
        return shlex.join(["qwen3-recipe", "run", recipe, "-o", str(self.run_dir), *sets, "--only", only])


def job_status(folder: Path, fingerprint: str) -> tuple[str, str | None]:
    done = read_json(folder / "done.json")
    if done is not None:
        return ("done" if done.get("fingerprint") == fingerprint else "stale"), done.get("finished_at")
    return ("started" if (folder / "started.json").exists() else "to run"), None


def load_run(run_dir: Path) -> RunInfo:
    from qwen3_recipe.errors import Loc, Problem, RecipeError
    manifest = read_json(run_dir / "manifest.json")
    if manifest is None:
        raise RecipeError([Problem(f"no manifest.json in {run_dir} (compile the recipe first: "
                                   f"qwen3-recipe compile RECIPE -o {run_dir})",
                                   loc=Loc(str(run_dir / "manifest.json")))])
    run = RunInfo(run_dir, str(manifest.get("recipe", "?")), list(manifest.get("recipe_files") or []),
                  list(manifest.get("overrides") or []), dict(manifest.get("packages") or {}))
    for job in manifest.get("jobs", []):
        folder = run_dir / "jobs" / job["name"]
        status, finished = job_status(folder, job.get("fingerprint", ""))
        config = (read_json(folder / "job.json") or {}).get("config") or job.get("config") or {}
        run.jobs.append(JobInfo(job["name"], job.get("kind", "?"), list(job.get("groups", [])),
                                list(job.get("deps", [])), job.get("fingerprint", ""),
                                job.get("estimate") or {}, config, status, finished))
    return run
