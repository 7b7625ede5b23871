"""Cross-field and reference checks, run on the merged raw tree.

They run on the raw tree (not the validated model) so that they still report when another part
of the recipe failed schema validation: a user sees all problems at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from qwen3_recipe.catalog import Catalogs
from qwen3_recipe.errors import Problem, did_you_mean
from qwen3_recipe.presets import PRESETS, Arch, resolve_arch
from qwen3_recipe.recipe.schema.model import Architecture
from qwen3_recipe.recipe.yaml_source import KeyPath, SourceMap
from qwen3_recipe.safe_paths import name_problem
from qwen3_recipe.units import parse_seq_len, parse_tokens

RL_TYPES = {"reasoning_rl", "general_rl"}


def _get(node: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def _list(node: Any) -> list:
    return node if isinstance(node, list) else []


def _mapping(node: Any) -> dict:
    return node if isinstance(node, dict) else {}


def _try(parse, value: Any) -> int | None:
    try:
        return parse(value) if value is not None else None
    except ValueError:
        return None


def dimension_kind(node: Any) -> str | None:
    """"scale" or "labels" for a data.quality dimension as written (shorthand or mapping)."""
    if isinstance(node, str) or (isinstance(node, dict) and node.get("scale") is not None):
        return "scale"
    if isinstance(node, list) or (isinstance(node, dict) and node.get("labels") is not None):
        return "labels"
    return None


class Checker:
    def __init__(self, data: dict, smap: SourceMap, catalogs: Catalogs) -> None:
        self.data, self.smap, self.cat = data, smap, catalogs
        self.problems: list[Problem] = []
        self.sources = _mapping(_get(data, "data", "sources"))
        self.synth_jobs = _mapping(_get(data, "synth", "jobs"))
        self.pre_stages = _mapping(_get(data, "pretrain", "stages"))
        self.post_stages = _mapping(_get(data, "posttrain", "stages"))

    def err(self, path: KeyPath, message: str, hint: str | None = None, at_key: bool = False) -> None:
        loc = self.smap.keys.get(path) if at_key else None
        self.problems.append(Problem(message, ".".join(map(str, path)), loc or self.smap.find(path), hint))

    def ref(self, path: KeyPath, value: Any, choices: dict | set, what: str, at_key: bool = False) -> bool:
        if isinstance(value, str) and value not in choices:
            self.err(path, f"unknown {what} '{value}'", did_you_mean(value, choices), at_key)
            return False
        return True

    def dataset(self, path: KeyPath, name: Any, catalog: dict, what: str) -> None:
        """A reference to a catalog entry; a local entry's file must exist."""
        if not self.ref(path, name, catalog, what) or not isinstance(name, str):
            return
        local = catalog[name].local_path()
        if local is not None and not local.exists():
            self.err(path, f"{what} '{name}' ({catalog[name].loc}) points at a missing file: {local}")

    # -- sections ---------------------------------------------------------------------------
    def model_arch(self, path: KeyPath, node: Any) -> Arch | None:
        preset, arch = _get(node, "preset"), _get(node, "arch")
        if isinstance(preset, str) and not self.ref(path + ("preset",), preset, PRESETS, "preset"):
            return None
        if (preset is not None and not isinstance(preset, str)) or (arch is not None and not isinstance(arch, dict)):
            return None  # a type error, reported by schema validation
        try:
            fields = Architecture.model_validate(arch).model_dump() if arch else None
        except ValidationError:
            return None  # reported by schema validation
        try:
            resolved = resolve_arch(preset, fields)
        except ValueError as exc:
            if preset is None and arch is None and path != ("model",):
                return None  # a stage reference, checked elsewhere
            self.err(path, str(exc))
            return None
        if resolved.num_heads % resolved.num_kv_heads:
            self.err(path + ("arch", "num_kv_heads"), f"num_heads ({resolved.num_heads}) must be "
                     f"divisible by num_kv_heads ({resolved.num_kv_heads})")
        if resolved.num_experts and not 0 < resolved.num_experts_per_tok <= resolved.num_experts:
            self.err(path + ("arch", "num_experts_per_tok"), "must be between 1 and num_experts")
        return resolved

    def check_model(self) -> Arch | None:
        arch = self.model_arch(("model",), _get(self.data, "model"))
        tok = _get(self.data, "tokenizer")
        if _get(tok, "type") == "train":
            for i, name in enumerate(_list(_get(tok, "sources"))):
                self.ref(("tokenizer", "sources", i), name, self.sources, "source")
            vocab = _get(tok, "vocab_size")
            if arch and isinstance(vocab, int) and vocab > arch.vocab_size:
                self.err(("tokenizer", "vocab_size"), f"tokenizer vocab ({vocab}) exceeds the model's "
                         f"vocab_size ({arch.vocab_size})")
        return arch

    def check_data(self) -> None:
        for name, src in self.sources.items():
            if isinstance(src, dict) and src.get("synth") is not None:
                self.ref(("data", "sources", name, "synth"), src["synth"], self.synth_jobs, "synth job")
                continue
            dataset = _get(src, "dataset") if isinstance(src, dict) else src
            self.dataset(("data", "sources", name) + (("dataset",) if isinstance(src, dict) else ()),
                         dataset, self.cat.datasets, "dataset")
        for i, flt in enumerate(_list(_get(self.data, "data", "filters"))):
            for j, name in enumerate(_list(_get(flt, "sources"))):
                self.ref(("data", "filters", i, "sources", j), name, self.sources, "source")
            if _get(flt, "type") == "label":
                self.check_label_filter(("data", "filters", i), flt)
        for method in ("exact", "minhash"):
            for j, name in enumerate(_list(_get(self.data, "data", "dedup", method, "sources"))):
                self.ref(("data", "dedup", method, "sources", j), name, self.sources, "source")
        if _get(self.data, "data", "decontamination", "method") == "token_ngram" and \
                _get(self.data, "tokenizer", "type") == "train":
            self.err(("data", "decontamination", "method"), "token n-grams need an existing tokenizer "
                     "(tokenizer.type: pretrained): a trained one is built from the decontaminated data")
        if _get(self.data, "data", "decontamination", "method") == "datatrove" and \
                _get(self.data, "data", "decontamination", "action") == "flag":
            self.err(("data", "decontamination", "action"), "datatrove's n-gram filter can only drop; "
                     "use method word_ngram or token_ngram to flag")
        annotator = _get(self.data, "data", "quality", "annotator")
        if isinstance(_get(annotator, "preset"), str):  # it sizes the annotator's serving
            self.ref(("data", "quality", "annotator", "preset"), annotator["preset"], PRESETS, "preset")
        benches = _get(self.data, "data", "decontamination", "benchmarks")
        for i, name in enumerate(benches if isinstance(benches, list) else []):
            self.dataset(("data", "decontamination", "benchmarks", i), name, self.cat.evals, "benchmark")
        for mix_name, mix in _mapping(_get(self.data, "data", "mixtures")).items():
            weights = _mapping(_get(mix, "weights"))
            base = ("data", "mixtures", mix_name)
            for key in weights:
                self.check_weight_key(base + ("weights", key), key)
            values = [w for w in weights.values() if isinstance(w, (int, float))]
            if weights and len(values) == len(weights) and abs(sum(values) - 1.0) > 1e-6:
                self.err(base + ("weights",), f"weights must sum to 1 (they sum to {sum(values):.6g})")
            buckets = _list(_get(mix, "length_buckets"))
            shares = [_get(b, "share") for b in buckets]
            if buckets and all(isinstance(s, (int, float)) for s in shares) and abs(sum(shares) - 1) > 1e-6:
                self.err(base + ("length_buckets",), f"bucket shares must sum to 1 (they sum to {sum(shares):.6g})")
            for i, b in enumerate(buckets):
                lo, hi = _try(parse_seq_len, _get(b, "min")), _try(parse_seq_len, _get(b, "max"))
                if lo is not None and hi is not None and lo >= hi:
                    self.err(base + ("length_buckets", i), "min must be below max")

    def quality_dimensions(self) -> dict | None:
        """data.quality's dimensions as written (the default when it declares none); None: no data.quality."""
        quality = _get(self.data, "data", "quality")
        if not isinstance(quality, dict):
            return None
        dims = _get(quality, "dimensions")
        return dims if isinstance(dims, dict) else {"edu": "0-5"}

    def check_weight_key(self, path: KeyPath, key: str) -> None:
        """A mixture weight: a source, or a label slice (recipe/slices.py) of labelled sources."""
        from qwen3_recipe.recipe.slices import ORDER_OPS, parse_key
        try:
            wk = parse_key(key)
        except ValueError as exc:
            self.err(path, str(exc), at_key=True)
            return
        if wk.source is not None and not self.ref(path, wk.source, self.sources, "source", at_key=True):
            return
        if not wk.is_slice:
            return
        dims = self.quality_dimensions()
        if dims is None:
            self.err(path, f"the slice '{key}' needs `data.quality` (the annotation that predicts its labels)",
                     at_key=True)
            return
        labelled = _get(self.data, "data", "quality", "sources")
        if isinstance(labelled, list) and wk.source is not None and wk.source not in labelled:
            self.err(path, f"source '{wk.source}' carries no labels (data.quality.sources: "
                     f"{', '.join(map(str, labelled))})", at_key=True)
        for c in wk.conditions:
            if not self.ref(path, c.dimension, dims, f"dimension of data.quality (in '{key}')", at_key=True):
                continue
            node = dims[c.dimension]
            if dimension_kind(node) == "labels":
                labels = node if isinstance(node, list) else _get(node, "labels") or []
                if c.op in ORDER_OPS:
                    self.err(path, f"'{c.dimension}' is a label set: compare it with = or != (in '{key}')", at_key=True)
                for choice in c.choices:
                    self.ref(path, choice, set(labels), f"label of '{c.dimension}' (in '{key}')", at_key=True)
            else:
                for choice in c.choices:
                    if _try(float, choice) is None:
                        self.err(path, f"'{c.dimension}' is a scale: compare it with a number, not "
                                 f"'{choice}' (in '{key}')", at_key=True)

    def check_label_filter(self, path: KeyPath, flt: dict) -> None:
        """A label filter reads a dimension of data.quality, of the right kind, on labelled sources."""
        quality, dims = _get(self.data, "data", "quality"), self.quality_dimensions()
        if dims is None:
            self.err(path + ("type",), "a label filter needs `data.quality` (the annotation that predicts the labels)")
            return
        name = _get(flt, "dimension")
        if not self.ref(path + ("dimension",), name, dims, "dimension of data.quality") or not isinstance(name, str):
            return
        kind = dimension_kind(dims[name])
        if kind == "scale" and _get(flt, "values") is not None:
            self.err(path + ("values",), f"dimension '{name}' is a scale: filter it with min and/or max")
        labels = _get(dims[name], "labels") if isinstance(dims[name], dict) else dims[name]
        if kind == "labels":
            for key in ("min", "max"):
                if _get(flt, key) is not None:
                    self.err(path + (key,), f"dimension '{name}' is a label set: filter it with `values`")
            for j, value in enumerate(_list(_get(flt, "values"))):
                self.ref(path + ("values", j), value, {v for v in _list(labels) if isinstance(v, str)},
                         f"label of '{name}'")
        labelled = _get(quality, "sources")
        if isinstance(labelled, list):
            unlabelled = [s for s in _list(_get(flt, "sources")) or list(self.sources) if s not in labelled]
            if unlabelled:
                self.err(path + ("sources" if _get(flt, "sources") else "type",),
                         f"source(s) {', '.join(map(repr, unlabelled))} carry no labels (data.quality.sources: "
                         f"{', '.join(map(str, labelled))}): name the labelled ones in this filter's `sources`")

    def check_removed(self) -> None:
        """Keys that once validated but never changed what ran: refused with what to do instead."""
        if _get(self.data, "outputs", "export_hf") is not None:
            self.err(("outputs", "export_hf"), "every training stage exports HF weights (later stages, synth "
                     "teachers and evals load them); there is nothing to switch off", at_key=True)

    def check_pretrain(self) -> None:
        mixtures = _mapping(_get(self.data, "data", "mixtures"))
        default_batch = _try(parse_tokens, _get(self.data, "pretrain", "batch_tokens"))
        previous: tuple[str, int] | None = None
        for name, stage in self.pre_stages.items():
            base = ("pretrain", "stages", name)
            self.ref(base + ("mixture",), _get(stage, "mixture"), mixtures, "mixture")
            seq = _try(parse_seq_len, _get(stage, "seq_len"))
            start = _try(parse_seq_len, _get(stage, "seq_len_start"))
            if seq is not None and start is not None and start > seq:
                self.err(base + ("seq_len_start",), f"seq_len_start ({start}) exceeds seq_len ({seq})")
            elif seq and start and (seq % start or (seq // start) & (seq // start - 1)):
                self.err(base + ("seq_len_start",), f"seq_len ({seq}) is not seq_len_start ({start}) times a power "
                         "of two", "the stage trains at doubling lengths from seq_len_start to seq_len")
            if _get(stage, "yarn") is not None:
                self.err(base + ("yarn",), "YaRN is not applied per pretraining stage", "set model.yarn: it goes "
                         "into the exported config.json, for inference-time context extension",
                         at_key=True)
            first = start if start is not None else seq
            if previous and first is not None and first < previous[1]:
                key = "seq_len_start" if start is not None else "seq_len"
                self.err(base + (key,), f"sequence length decreases from {previous[1]} "
                         f"(stage '{previous[0]}') to {first}; stages may only keep or grow it")
            batch = _try(parse_tokens, _get(stage, "batch_tokens")) or default_batch
            if batch and seq and batch < seq:
                self.err(base + ("seq_len",), f"a global batch of {batch} tokens holds no sequence of {seq}")
            if seq is not None:
                previous = (name, seq)
        for base in [("pretrain", "lr")] + [("pretrain", "stages", n, "lr") for n in self.pre_stages]:
            lr = _mapping(_get(self.data, *base))
            if lr.get("decay") == "constant":  # the LR stays at its peak: these would change nothing
                for key in ("decay_fraction", "min_lr_ratio"):
                    if key in lr:
                        self.err(base + (key,), f"a constant schedule does not decay: {key} has no effect",
                                 "remove it, or choose decay: cosine, linear or wsd", at_key=True)

    def check_teacher(self, path: KeyPath, teacher: Any, student: Arch | None) -> None:
        stage = _get(teacher, "stage")
        if stage is not None:
            self.ref(path + ("stage",), stage, {**self.pre_stages, **self.post_stages}, "stage")
            for key in ("preset", "arch", "path"):  # they would be ignored: the stage's weights are the teacher
                if _get(teacher, key) is not None:
                    self.err(path + (key,), f"a teacher is a stage of this recipe or a {key}, not both",
                             f"a child recipe's mapping merges into its base's: `{key}: null` drops an inherited one",
                             at_key=True)
            return
        if _get(teacher, "preset") is None and _get(teacher, "arch") is None:
            if isinstance(teacher, dict) and _get(teacher, "path") is not None:
                return  # weights only: sizes unknown until loaded
            if isinstance(teacher, dict):
                self.err(path, "give the teacher's `preset` or `arch` (with `path`), or a `stage`")
            return
        arch = self.model_arch(path, teacher)
        if arch and student and arch.total_params <= student.total_params:
            self.err(path, f"the teacher ({arch.total_params / 1e9:.3g}B params) must be larger than "
                     f"the student ({student.total_params / 1e9:.3g}B)")
        if arch and student and arch.vocab_size != student.vocab_size:  # caught before a teacher pass, not after
            self.err(path, f"the teacher's vocabulary ({arch.vocab_size:,}) is not the student's "
                     f"({student.vocab_size:,}): distillation compares next-token distributions over one tokenizer")

    def data_ref(self, path: KeyPath, value: Any) -> None:
        if isinstance(value, str) and value in self.synth_jobs:
            return
        self.dataset(path, value, {**self.synth_jobs, **self.cat.datasets}, "synth job or dataset")

    def check_synth(self, student: Arch | None) -> None:
        for name, job in self.synth_jobs.items():
            base = ("synth", "jobs", name)
            self.dataset(base + ("prompts",), _get(job, "prompts"), self.cat.datasets, "dataset")
            self.check_teacher(base + ("teacher",), _get(job, "teacher"), None)
            k, n = _get(job, "keep_per_prompt"), _get(job, "samples_per_prompt")
            if isinstance(k, int) and isinstance(n, int) and k > n:
                self.err(base + ("keep_per_prompt",), f"keeps {k} of only {n} samples per prompt")
            share = _get(job, "multi_turn_share")
            if isinstance(share, (int, float)) and share > 0 and _get(job, "mode") != "both":
                self.err(base + ("multi_turn_share",), "mode-switch conversations need mode: both "
                         "(turns of both modes)")
            if isinstance(share, (int, float)) and share > 0 and _get(job, "soft_switch") in (False, 0, "false", "off", "no"):
                self.err(base + ("soft_switch",), "mode-switch conversations switch with the /think and "
                         "/no_think flags: they need soft_switch: true")
            self.check_code_prompts(base, job)
            budget = _try(parse_tokens, _get(job, "thinking_budget"))
            cap = _try(parse_tokens, _get(job, "max_tokens"))
            if budget and cap and budget >= cap:
                self.err(base + ("thinking_budget",), f"thinking budget ({budget}) must be below max_tokens ({cap})")
            if _get(job, "thinking_budget") is not None and _get(job, "mode") == "no_think":
                self.err(base + ("thinking_budget",), "a no_think job does not think: its thinking budget would "
                         "do nothing", at_key=True)

    def check_code_prompts(self, base: KeyPath, node: Any) -> None:
        """A code verifier needs tests: the prompt set must name its tests column and convention
        (once, reference solutions were taken as the tests)."""
        ref = _get(node, "prompts")
        if _get(node, "verifier", "type") != "code" or not isinstance(ref, str) or ref not in self.cat.datasets:
            return
        spec = self.cat.datasets[ref].spec
        if not spec.tests_field or not spec.test_format:
            self.err(base + ("verifier",), f"a code verifier runs the prompts' tests, but dataset '{ref}' "
                     f"({self.cat.datasets[ref].loc}) declares no `tests_field` and `test_format`")

    def check_posttrain(self, student: Arch | None) -> None:
        seen_offpolicy = False
        from qwen3_recipe.serving import TEACHER_SUFFIX
        for name in self.post_stages:
            if name in self.pre_stages:
                self.err(("posttrain", "stages", name), f"stage name '{name}' is also a pretrain stage", at_key=True)
            if name.endswith(TEACHER_SUFFIX):  # posttrain.<stage>.teacher is an off-policy stage's teacher pass
                self.err(("posttrain", "stages", name), f"a stage name cannot end in '{TEACHER_SUFFIX}' (the "
                         "name of an off-policy distillation stage's teacher pass)", at_key=True)
        for name, stage in self.post_stages.items():
            base, kind = ("posttrain", "stages", name), _get(stage, "type")
            for i, ref in enumerate(_list(_get(stage, "data"))):
                self.data_ref(base + ("data", i), ref)
            if _get(stage, "prompts") is not None:
                self.data_ref(base + ("prompts",), _get(stage, "prompts"))
                self.check_code_prompts(base, stage)
            if kind in ("distill_offpolicy", "distill_onpolicy"):
                self.check_teacher(base + ("teacher",), _get(stage, "teacher"), student)
            seen_offpolicy |= kind == "distill_offpolicy"
            if kind == "distill_onpolicy" and not seen_offpolicy:
                self.err(base + ("type",), "on-policy distillation must come after an off-policy "
                         "distillation stage (strong-to-weak: off-policy first)")

    def check_rollout(self) -> None:
        """Rollout servers that a Slurm allocation cannot hold, or on Ray (the rest depends on the machine: checked
        when the stage runs, posttrain/trl_stage.py)."""
        base, ex = ("execution", "rollout"), _mapping(_get(self.data, "execution"))
        slurm, rollout = _mapping(_get(ex, "slurm")), _mapping(_get(ex, "rollout"))
        tp, per_node = rollout.get("gpus_per_server", 1), slurm.get("gpus_per_node", 8)
        if ex.get("executor") == "slurm" and isinstance(tp, int) and isinstance(per_node, int) and tp > per_node:
            self.err(base + ("gpus_per_server",), f"a rollout server of {tp} GPUs does not fit on a node of "
                     f"{per_node} (execution.slurm.gpus_per_node)")
        if ex.get("executor") == "ray" and rollout.get("servers"):
            self.err(base + ("servers",), "rollout servers run on this machine or on Slurm nodes, not on Ray yet: "
                     "set execution.rollout.servers: 0 (each Ray worker samples with its own engine)")

    def check_evals(self) -> None:
        for i, name in enumerate(_list(_get(self.data, "evals", "benchmarks"))):
            self.dataset(("evals", "benchmarks", i), name, self.cat.evals, "benchmark")
            if isinstance(name, str) and name in self.cat.evals:
                self.check_scorable(("evals", "benchmarks", i), name)
        for i, name in enumerate(_list(_get(self.data, "evals", "after"))):
            self.ref(("evals", "after", i), name, {**self.pre_stages, **self.post_stages}, "stage")

    def check_scorable(self, path: KeyPath, name: str) -> None:
        """A benchmark the recipe evaluates must be scorable: its verifier exists, its entry
        declares what that verifier reads, its local rows have it, a judged one has a judge."""
        from itertools import islice

        from qwen3_recipe.catalog.items import row_problems, spec_problems
        from qwen3_recipe.catalog.rows import file_rows
        from qwen3_recipe.verify import REGISTRY
        entry = self.cat.evals[name]
        where = f"benchmark '{name}' ({entry.loc})"
        if entry.spec.verifier not in REGISTRY:
            self.err(path, f"{where} cannot be scored: no '{entry.spec.verifier}' verifier is registered")
            return
        for key, message in spec_problems(entry.spec):
            self.err(path, f"{where} cannot be scored: {message}", f"add `{key}` to its catalog entry")
        if entry.spec.verifier == "judge" and not _get(self.data, "evals", "judge"):
            self.err(path, f"{where} is judged by a model: declare `evals.judge` (a stage, path or server_url)")
        elif entry.spec.verifier == "judge" and not entry.spec.baseline_field \
                and not _get(self.data, "evals", "judge", "baseline"):
            self.err(path, f"{where} has no baseline answers (`baseline_field`): declare the baseline "
                           "model as `evals.judge.baseline`")
        local = entry.local_path()
        if local is not None and local.exists() and not spec_problems(entry.spec):
            try:
                rows = list(islice(file_rows(local), 5))
            except (OSError, ValueError) as e:
                self.err(path, f"{where}: cannot read {local}: {e}")
                return
            for message in row_problems(name, entry.spec, rows):
                self.err(path, f"{where} cannot be scored: {local.name} {message}")

    def check_names(self) -> None:
        """Keys that name jobs (and so folders of the run directory) match one pattern."""
        for path in (("data", "sources"), ("data", "mixtures"), ("pretrain", "stages"), ("posttrain", "stages"),
                     ("synth", "jobs")):
            for key in _mapping(_get(self.data, *path)):
                problem = name_problem(key)
                if problem:
                    self.err((*path, key), problem, "rename it, e.g. with '_' for the other characters",
                             at_key=True)

    def run(self) -> list[Problem]:
        self.check_names()
        student = self.check_model()
        self.check_data()
        self.check_removed()
        self.check_pretrain()
        self.check_synth(student)
        self.check_posttrain(student)
        self.check_rollout()
        self.check_evals()
        return self.problems


def check_recipe(data: dict, smap: SourceMap, catalogs: Catalogs) -> list[Problem]:
    return Checker(data, smap, catalogs).run()
