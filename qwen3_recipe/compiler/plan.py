"""A plan: jobs in dependency order with fingerprints, estimates, data sufficiency and status."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qwen3_recipe.compiler.estimate import Estimate, Estimator
from qwen3_recipe.compiler.fingerprint import job_fingerprint
from qwen3_recipe.compiler.graph import CycleError, toposort
from qwen3_recipe.compiler.jobs import Job, JobBuilder, stage_steps
from qwen3_recipe.compiler.plan_view import DONE_FILE, job_status  # noqa: F401 (DONE_FILE re-exported)
from qwen3_recipe.compiler.synth_supply import synth_chars
from qwen3_recipe.errors import Problem, RecipeError
from qwen3_recipe.recipe.validate import LoadedRecipe
from qwen3_recipe.safe_paths import name_problem

CHARS_PER_TOKEN = 4.0  # local files without a declared token count


@dataclass
class Shortfall:
    """A weight key whose supply (at the mixture's max repetition) is under its need; `have` None:
    not known (a hub dataset without a declared size; a synth source or a label slice until its job
    has run in the run directory)."""
    source: str
    need: int
    have: int | None


@dataclass
class PlannedJob:
    job: Job
    estimate: Estimate
    status: str  # "cached" | "changed" | "new"
    shortfalls: list[Shortfall] = field(default_factory=list)


@dataclass
class Plan:
    loaded: LoadedRecipe
    run_dir: Path
    jobs: list[PlannedJob]

    def __getitem__(self, name: str) -> PlannedJob:
        return next(p for p in self.jobs if p.job.name == name)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {p.job.name: p.job.fingerprint for p in self.jobs}

    @property
    def deps(self) -> dict[str, list[str]]:
        return {p.job.name: p.job.deps for p in self.jobs}


def default_run_dir(loaded: LoadedRecipe) -> Path:
    return Path(loaded.recipe.outputs.run_dir or f"runs/{loaded.recipe.name}")


def _available_tokens(loaded: LoadedRecipe, source: str, run_dir: Path | None, cached: set[str]) -> int | None:
    spec = loaded.recipe.data.sources[source]
    if spec.synth:  # known once its synth job has run with this configuration
        job = f"synth.{spec.synth}"
        return int(synth_chars(run_dir / "jobs" / job) / CHARS_PER_TOKEN) if run_dir and job in cached else None
    entry = loaded.catalogs.datasets[spec.dataset]
    if entry.spec.tokens:
        return entry.spec.tokens
    local = entry.local_path()
    if not local or not local.exists():
        return None
    size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) if local.is_dir() else local.stat().st_size
    return int(size / CHARS_PER_TOKEN)


def _share(source: str, key: str, sliced: set[str], shares: dict | None) -> float | None:
    """The share of `source`'s tokens drawn under `key`: all of it, unless slices cut the source."""
    if source not in sliced:
        return 1.0
    return None if shares is None else shares.get(source, {}).get(key, 0.0)


def shortfalls(loaded: LoadedRecipe, stage_name: str, run_dir: Path | None = None,
               cached: set[str] = frozenset()) -> list[Shortfall]:
    """Weight keys that cannot give a stage its share even at the mixture's max repetition. A label
    slice (and a source some slice draws from) holds its share of the source's tokens, measured on
    the annotated sample in `run_dir` (compiler/slice_supply.py); unknown before that sample exists. A
synth source's supply is its dataset's, known once its job is `cached` (compiler/synth_supply.py)."""
    from qwen3_recipe.compiler.slice_supply import annotated_shares
    from qwen3_recipe.recipe.slices import parse_keys
    stage = loaded.recipe.pretrain.stages[stage_name]
    mixture = loaded.recipe.data.mixtures[stage.mixture]
    every = list(loaded.recipe.data.sources)
    keys = parse_keys(mixture.weights)
    sliced = {s for k in keys if k.is_slice for s in k.sources(every)}
    shares = annotated_shares(run_dir, keys) if sliced and run_dir else None
    short = []
    batch, steps = stage_steps(stage.tokens, stage.seq_len, stage.batch_tokens or loaded.recipe.pretrain.batch_tokens)
    for key, weight in zip(keys, mixture.weights.values()):
        tokens = [(_available_tokens(loaded, s, run_dir, cached), _share(s, key.key, sliced, shares))
                  for s in key.sources(every)]
        need = int(weight * batch * steps)  # what its mix job supplies: the trainer's exact consumption
        if any(have is None or share is None for have, share in tokens):
            short.append(Shortfall(key.key, need, None))  # not known yet
            continue
        have = int(sum(have * share for have, share in tokens))
        if have * mixture.max_repetition < need:
            short.append(Shortfall(key.key, need, int(have * mixture.max_repetition)))
    return short


def cycle_problem(exc: CycleError, jobs: dict[str, Job], loaded: LoadedRecipe) -> RecipeError:
    """A cycle, located at the key that closes it: a synth job's teacher when one is in it (a synth
    source whose teacher is a stage trained on that source's data), else the first job's key."""
    synth = next((jobs[n] for n in exc.cycle if jobs[n].kind == "synth"), None)
    if synth is None:
        first = jobs[exc.cycle[0]]
        return RecipeError([Problem(str(exc), ".".join(first.key_path), loaded.raw.smap.find(first.key_path))])
    key = synth.key_path + ("teacher",)
    msg = (f"{exc}: {synth.name}'s teacher is trained on data that waits for {synth.name} (its samples are "
           "a pretraining source); teach it with a model the curriculum does not train on them (a `path`, "
           "or a stage that does not depend on that source)")
    return RecipeError([Problem(msg, ".".join(key), loaded.raw.smap.find(key))])


def make_plan(loaded: LoadedRecipe, run_dir: Path | None = None) -> Plan:
    jobs = JobBuilder(loaded).build()
    deps = {name: job.deps for name, job in jobs.items()}
    try:
        order = toposort(deps)
    except CycleError as exc:
        raise cycle_problem(exc, jobs, loaded) from None
    run_dir = run_dir or default_run_dir(loaded)
    outside = [job for job in jobs.values() if name_problem(job.name)]
    if outside:  # the recipe checks refuse such keys; this guards jobs built any other way
        raise RecipeError([Problem(f"job '{job.name}': {name_problem(job.name)}", ".".join(job.key_path),
                                   loaded.raw.smap.find(job.key_path)) for job in outside])
    estimator = Estimator(loaded, jobs)
    planned, cached = [], set()
    for name in order:
        job = jobs[name]
        job.fingerprint = job_fingerprint(job.kind, job.config, job.inputs,
                                          {d: jobs[d].fingerprint for d in job.deps})
        short = shortfalls(loaded, name.split(".", 1)[1], run_dir, cached) if job.kind == "pretrain" else []
        status = job_status(run_dir, job.dir, job.fingerprint)
        cached |= {name} if status == "cached" else set()
        planned.append(PlannedJob(job, estimator.estimate(job), status, short))
    return Plan(loaded, run_dir, planned)
