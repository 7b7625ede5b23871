"""The recipe as jobs: one per data source, dedup, tokenizer, stage mixture, training stage,
synth job and evaluated stage. Each job says what it computes (`config`), what it reads
(`deps`, external `inputs`) and what it writes (`outputs`, relative to the run directory)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen3_recipe.catalog.load import Entry
from qwen3_recipe.compiler.fingerprint import digest, file_digest
from qwen3_recipe.recipe.schema.posttrain import SFTStage
from qwen3_recipe.recipe.validate import LoadedRecipe

GROUPS = ("data", "quality", "tokenizer", "pretrain", "sft", "synth", "posttrain", "evals")
SFT_KINDS = {"sft", "fusion"}
MERGED = ("data.dedup", "quality.label")  # jobs whose output holds every source's curated documents


@dataclass
class Job:
    name: str
    kind: str
    groups: tuple[str, ...]
    deps: list[str]
    config: dict[str, Any]
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    key_path: tuple[str, ...] = ()
    fingerprint: str = ""

    @property
    def dir(self) -> str:
        return f"jobs/{self.name}"


def stage_steps(tokens: int, seq_len: int, batch_tokens: int) -> tuple[int, int]:
    """(global batch in tokens, steps) of a pretraining stage: whole sequences of the stage's longest
    length, enough steps to cover its token budget. Its mix job supplies steps x batch tokens, so the
    trainer never runs past the mixed data (which honours max_repetition)."""
    batch = max(seq_len, batch_tokens // seq_len * seq_len)
    return batch, max(1, math.ceil(tokens / batch))


def entry_digest(entry: Entry) -> str:
    spec = entry.spec.model_dump(mode="json", exclude={"description", "tokens_per_word", "family"})  # what reads
    local = entry.local_path()
    return digest({"spec": spec, "file": file_digest(local) if local and local.exists() else None})


def _filter_config(f: Any) -> dict[str, Any]:
    """What a data job's filter does; a filter's `sources` only chooses the jobs it is in. The language
    filter's default backend stays out (jobs run before it existed keep their fingerprints), and
    lingua reads no model file."""
    out = _dump(f, exclude={"sources"})
    if f.type == "language" and out.get("backend") == "fasttext":
        del out["backend"]
    elif f.type == "language":
        out.pop("model_path", None)
    return out


def weights_inputs(*paths: str | None) -> dict[str, str]:
    """Content digests of local model weights a job reads (a teacher, an annotator, a reward model,
    a checkpoint to start from, a pretrained tokenizer): replaced weights rerun it. Hub ids are
    named in the config already."""
    return {f"weights:{p}": file_digest(Path(p)) for p in paths if p and Path(p).exists()}


def _dump(model: Any, exclude: set[str] | None = None) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=exclude)


class JobBuilder:
    def __init__(self, loaded: LoadedRecipe) -> None:
        self.loaded, self.r = loaded, loaded.recipe
        self.jobs: dict[str, Job] = {}
        # stage name -> job name, known up front so references resolve in any build order
        self.stage_job = {**{n: f"pretrain.{n}" for n in self.r.pretrain.stages},
                          **{n: f"posttrain.{n}" for n in self.r.posttrain.stages}}

    def add(self, job: Job) -> Job:
        job.outputs = {k: f"{job.dir}/{v}" for k, v in job.outputs.items()}
        self.jobs[job.name] = job
        return job

    def dataset_input(self, name: str) -> dict[str, str]:
        return {f"dataset:{name}": entry_digest(self.loaded.catalogs.datasets[name])}

    def benchmark_inputs(self, names: list[str]) -> dict[str, str]:
        return {f"benchmark:{n}": entry_digest(self.loaded.catalogs.evals[n]) for n in names}

    def decont_benchmarks(self) -> list[str]:
        chosen = self.r.data.decontamination.benchmarks
        return sorted(self.loaded.catalogs.evals) if chosen == "all" else list(chosen)

    def decont_settings(self) -> dict[str, Any]:
        """How documents, prompts and samples are checked. The gate (threshold, allow_contamination)
        is the mix jobs' and plan's check, not these jobs' work: left out of their configs."""
        decont = _dump(self.r.data.decontamination, exclude={"threshold", "allow_contamination"})
        if decont["method"] == "token_ngram":  # its n-grams are the tokenizer's tokens
            decont["tokenizer"] = getattr(self.r.tokenizer, "path", None)
        return decont

    # -- data ------------------------------------------------------------------------------
    def data(self) -> list[str]:
        names: list[str] = []
        decont = self.decont_settings()
        for src, source in self.r.data.sources.items():
            # a filter's `sources` only chooses the jobs it is in: not part of what runs
            filters = [_filter_config(f) for f in self.r.data.filters  # label filters: quality.label's
                       if f.type != "label" and (f.sources is None or src in f.sources)]
            # defaults added later stay out: data jobs already run keep their fingerprints
            read = {k: v for k, v in _dump(source).items()
                    if not (v is None and k in ("dataset", "synth", "format"))
                    and not (k == "on_duplicate_id" and v == "fail")}
            # a synth source reads what its synth job kept (their fingerprint chains through the dep)
            deps, origin = ([f"synth.{source.synth}"], {}) if source.synth else ([], self.dataset_input(source.dataset))
            job = self.add(Job(
                f"data.{src}", "data_prepare", ("data",), deps,
                {"source": src, "read": read, "filters": filters, "decontamination": decont,
                 "kept_sample_rate": self.r.outputs.provenance.kept_sample_rate},
                inputs={**origin, **self.benchmark_inputs(self.decont_benchmarks())},
                outputs={"documents": "output", "provenance": "provenance"},
                key_path=("data", "sources", src)))
            names.append(job.name)
        dedup = self.r.data.dedup
        if names and (dedup.exact.enabled or dedup.minhash.enabled):
            self.add(Job("data.dedup", "data_dedup", ("data",), names,
                         _dump(dedup) | {"kept_sample_rate": self.r.outputs.provenance.kept_sample_rate},
                         outputs={"documents": "output", "provenance": "provenance"},
                         key_path=("data", "dedup")))
            return ["data.dedup"]
        return names

    @staticmethod
    def curated_deps(curated: list[str], sources: list[str]) -> list[str]:
        return curated if len(curated) == 1 and curated[0] in MERGED else [f"data.{s}" for s in sources]

    def quality(self, curated: list[str]) -> list[str]:
        """`quality.annotate` (LLM labels on a sample, a classifier per dimension) and `quality.label`
        (the classifiers over every document, after dedup, then the label filters): the label job's
        output replaces the curated data downstream."""
        q = self.r.data.quality
        if q is None or not curated:
            return curated
        from qwen3_recipe.quality.rubric import rubric_text
        if q.annotator.stage and q.annotator.stage not in self.stage_job:
            from qwen3_recipe.errors import Problem, RecipeError
            path = ("data", "quality", "annotator", "stage")
            raise RecipeError([Problem(f"unknown stage '{q.annotator.stage}'", ".".join(path),
                                       self.loaded.raw.smap.find(path))])
        annotator, model_deps, weights = self.teacher(q.annotator)
        sources = q.sources or list(self.r.data.sources)
        settings = _dump(q)
        for key in ("annotator", "sources", "seed", "serving"):  # serving: lowered, not fingerprinted
            settings.pop(key)
        settings["dimensions"] = {name: {k: v for k, v in dim.items() if v is not None} | {"rubric": rubric_text(dim)}
                                  for name, dim in settings["dimensions"].items()}
        self.add(Job("quality.annotate", "quality_annotate", ("data", "quality"), curated + model_deps,
                     {"quality": settings, "annotator": annotator, "sources": sources, "curated": curated,
                      "seed": self.r.seed if q.seed is None else q.seed, **self.engine_args("quality.annotate")},
                     inputs=weights, outputs={"classifiers": "classifiers", "provenance": "provenance"},
                     key_path=("data", "quality")))
        from qwen3_recipe.recipe.schema.data import step_names
        label_filters = [f for f in self.r.data.filters if f.type == "label"]
        names = step_names([f.name or f"label_{f.dimension}" for f in label_filters])
        filters = [_dump(f, exclude={"type", "name"}) | {"step": n} for f, n in zip(label_filters, names)]
        references = {name: dim.reference for name, dim in q.dimensions.items() if dim.reference}
        self.add(Job("quality.label", "quality_label", ("data", "quality"), curated + ["quality.annotate"],
                     {"dimensions": list(q.dimensions), "sources": sources, "curated": curated,
                      "filters": filters, "kept_sample_rate": self.r.outputs.provenance.kept_sample_rate}
                     | ({"references": references} if references else {}),  # absent: fingerprints as before
                     outputs={"documents": "output", "provenance": "provenance"},
                     key_path=("data", "quality")))
        return ["quality.label"]

    def tokenizer(self, curated: list[str]) -> str:
        tok = self.r.tokenizer
        deps: list[str] = []
        if tok.type == "train":
            wanted = tok.sources or list(self.r.data.sources)
            deps = self.curated_deps(curated, wanted)
        config: dict[str, Any] = {"tokenizer": _dump(tok)}
        if tok.type == "train":  # a trained tokenizer's file records it; a pretrained one is copied as is
            config["model_max_length"] = self.loaded.arch.max_position_embeddings
        self.add(Job("tokenizer", "tokenizer", ("tokenizer",), deps, config,
                     inputs=weights_inputs(getattr(tok, "path", None)) if tok.type == "pretrained" else {},
                     outputs={"tokenizer": "tokenizer"}, key_path=("tokenizer",)))
        return "tokenizer"

    def mixes(self, curated: list[str]) -> None:
        from qwen3_recipe.recipe.slices import key_sources, parse_keys
        for name, stage in self.r.pretrain.stages.items():
            mixture = self.r.data.mixtures[stage.mixture]
            keys = parse_keys(mixture.weights)
            deps = self.curated_deps(curated, key_sources(keys, list(self.r.data.sources)))
            batch, steps = stage_steps(stage.tokens, stage.seq_len, stage.batch_tokens or self.r.pretrain.batch_tokens)
            self.add(Job(f"mix.{name}", "data_mix", ("data",), deps + ["tokenizer"],
                         {"stage": name, "mixture": _dump(mixture),
                          # a document goes to the first slice it matches: the written order is the work
                          **({"weight_order": list(mixture.weights)} if any(k.is_slice for k in keys) else {}),
                          "tokens": batch * steps, "seed": self.r.seed,
                          # related documents pack into sequences of the stage's length (no buckets)
                          "pack_target_tokens": None if mixture.length_buckets or not mixture.pack_related
                          else stage.seq_len},
                         outputs={"tokens": "tokens", "provenance": "provenance"},
                         key_path=("pretrain", "stages", name, "mixture")))

    # -- training --------------------------------------------------------------------------
    def pretrain(self) -> str | None:
        previous: str | None = None
        pre = self.r.pretrain
        for name, stage in pre.stages.items():
            # the mixture reaches the trainer as its mix job's tokens (a dependency), not as config
            resolved = stage.model_dump(mode="json", exclude={"mixture"}) | {
                "lr": _dump(stage.lr or pre.lr),
                "batch_tokens": stage.batch_tokens or pre.batch_tokens,
                "rope_theta": stage.rope_theta or self.loaded.arch.rope_theta,
                "checkpoint_every_steps": stage.checkpoint_every_steps or pre.checkpoint_every_steps,
            }
            deps = [f"mix.{name}", "tokenizer"]
            if previous and stage.init == "previous":
                deps.append(previous)
            job = self.add(Job(
                f"pretrain.{name}", "pretrain", ("pretrain",), deps,
                {"stage": resolved, "model": self.model_config(), "optimizer": _dump(pre.optimizer),
                 "seed": self.r.seed, "init": stage.init},
                outputs={"checkpoint": "checkpoint", "hf": "hf", "metrics": "metrics.jsonl"},
                key_path=("pretrain", "stages", name)))
            previous = job.name
        return previous

    def model_config(self) -> dict[str, Any]:
        return {"arch": self.loaded.arch.to_hf_config(),
                "yarn": _dump(self.r.model.yarn) if self.r.model.yarn else None}

    def engine_args(self, job_name: str) -> dict[str, Any]:
        """A generation job's serving `extra_args` (vLLM flags passed verbatim, which may change what it
        generates) as part of its config; nothing when there are none, so fingerprints stay as they were."""
        from qwen3_recipe.serving import engine_args, serving_of
        args = engine_args(serving_of(self.r, job_name))
        return {"engine_args": args} if args else {}

    def teacher(self, ref: Any) -> tuple[dict[str, Any], list[str], dict[str, str]]:
        """(its config, the stage job it is, the digest of its weights)."""
        if ref.stage:
            return {"stage": ref.stage}, [self.stage_job[ref.stage]], {}
        return _dump(ref), [], weights_inputs(ref.path)

    def synth(self) -> None:
        for name, job in self.r.synth.jobs.items():
            teacher, deps, weights = self.teacher(job.teacher)
            # how the teacher is served changes where requests go, not the dataset: in the lowered plan only
            settings = _dump(job, exclude={"serving"}) | {"teacher": teacher}
            for key, default in (("multi_turn_share", 0.0), ("soft_switch", True)):
                if settings[key] == default:  # added later: at the default, fingerprints stay as they were
                    settings.pop(key)
            if job.mode != "both":  # one mode: no switch to flag
                settings.pop("soft_switch", None)
            self.add(Job(f"synth.{name}", "synth", ("synth",), deps,
                         {"job": settings, "seed": self.r.seed,
                          "decontamination": self.decont_settings() if job.decontaminate else None,
                          **self.engine_args(f"synth.{name}")},
                         inputs={**self.dataset_input(job.prompts), **weights,
                                 **(self.benchmark_inputs(self.decont_benchmarks()) if job.decontaminate else {})},
                         outputs={"dataset": "dataset", "provenance": "provenance"},
                         key_path=("synth", "jobs", name)))

    def data_refs(self, refs: list[str]) -> tuple[list[str], dict[str, str]]:
        deps, inputs = [], {}
        for ref in refs:
            if ref in self.r.synth.jobs:
                deps.append(f"synth.{ref}")
            else:
                inputs.update(self.dataset_input(ref))
        return deps, inputs

    def posttrain(self, previous: str | None) -> None:
        for name, stage in self.r.posttrain.stages.items():
            refs = list(stage.data) if isinstance(stage, SFTStage) else [stage.prompts]
            deps, inputs = self.data_refs(refs)
            # RL / distillation prompts are decontaminated, and so are chat sets an SFT stage reads from
            # datasets_spec/ (synth datasets were, as prompts, by their synth job)
            decontaminated = not isinstance(stage, SFTStage) or any(ref not in self.r.synth.jobs for ref in refs)
            if decontaminated:
                inputs.update(self.benchmark_inputs(self.decont_benchmarks()))
            # an SFT stage's `tokens` only sizes plan's estimate (read from the recipe): not config
            # serving (a teacher's): where its requests go, not what it answers - in the lowered plan only
            config: dict[str, Any] = {"stage": stage.model_dump(mode="json", exclude={"tokens", "serving"}),
                                      "model": self.model_config(), "seed": self.r.seed}
            if decontaminated:  # how prompts are checked decides which are trained on (and which held out)
                decont = self.r.data.decontamination  # what the stage's lowering passes on (train/sft_plan.py)
                config["decontamination"] = {"method": decont.method, "n": decont.n}
            if not isinstance(stage, SFTStage):  # RL and distillation build the policy from its weights' config
                config["model"] = {"yarn": config["model"]["yarn"]}
            if hasattr(stage, "teacher"):
                config["stage"]["teacher"], teacher_deps, weights = self.teacher(stage.teacher)
                deps += teacher_deps
                inputs.update(weights)
            if stage.type == "distill_offpolicy":
                deps.append(self.teacher_pass(name, config, deps, inputs))
            inputs.update(weights_inputs(*(r.path for r in getattr(stage, "rewards", None) or [])))
            if previous:
                deps.append(previous)
            else:
                config["init"] = self.r.posttrain.init
                inputs.update(weights_inputs(self.r.posttrain.init))
            groups = ("sft", "posttrain") if stage.type in SFT_KINDS else ("posttrain",)
            job = self.add(Job(f"posttrain.{name}", stage.type, groups, ["tokenizer"] + deps, config,
                               inputs=inputs,
                               outputs={"checkpoint": "checkpoint", "hf": "hf", "metrics": "metrics.jsonl"},
                               key_path=("posttrain", "stages", name)))
            previous = job.name

    def teacher_pass(self, name: str, config: dict[str, Any], deps: list[str], inputs: dict[str, str]) -> str:
        """Off-policy distillation's teacher answering the stage's prompts with its top-k
        log-probabilities: a generation job of its own (served like synth jobs), whose samples the
        stage trains on for all its epochs. Reads what the stage reads, minus the student."""
        from qwen3_recipe.serving import TEACHER_SUFFIX
        stage, job_name = config["stage"], f"posttrain.{name}{TEACHER_SUFFIX}"
        keys = ("teacher", "prompts", "limit", "modes", "samples_per_prompt", "top_k", "max_tokens", "sampling")
        # the tokenizer only when decontamination counts its tokens (a retrained tokenizer: not a new pass)
        tokenizer = ["tokenizer"] if config["decontamination"]["method"] == "token_ngram" else []
        job = self.add(Job(job_name, "distill_teacher", ("posttrain",), tokenizer + deps,
                           {"pass": {k: stage[k] for k in keys}, "decontamination": config["decontamination"],
                            "seed": self.r.seed, **self.engine_args(job_name)},
                           inputs=dict(inputs), outputs={"samples": "samples.jsonl", "provenance": "provenance"},
                           key_path=("posttrain", "stages", name)))
        return job.name

    def evals(self) -> None:
        ev = self.r.evals
        if not ev.benchmarks:
            return
        after = ev.after
        if after is None:
            last_pre = list(self.r.pretrain.stages)[-1:]
            last_post = list(self.r.posttrain.stages)[-1:]
            after = last_pre + last_post
        for stage in after:
            self.add(Job(f"eval.{stage}", "eval", ("evals",), [self.stage_job[stage], "tokenizer"],
                         {"evals": _dump(ev, exclude={"serving"}) | {"after": None}, "stage": stage,
                          "seed": self.r.seed, **self.engine_args(f"eval.{stage}")},
                         inputs=self.benchmark_inputs(ev.benchmarks),
                         outputs={"results": "results.jsonl", "provenance": "provenance"},
                         key_path=("evals",)))

    def build(self) -> dict[str, Job]:
        curated = self.quality(self.data())
        self.tokenizer(curated)
        self.mixes(curated)
        self.synth()
        last = self.pretrain()
        # `posttrain.init`: post-train that checkpoint instead of this recipe's pretrained model
        self.posttrain(None if self.r.posttrain.init else last)
        self.evals()
        return self.jobs
