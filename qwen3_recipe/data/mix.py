"""`mix.<stage>`: the documents of one pretraining stage - sampled to the mixture's token shares
and budget (data/mixture.py), ordered for training, tokenized into datatrove's packed `.ds`
format - with a provenance row per document used (stage, tokens, repetitions, packed document).

Two passes over the curated documents: the first counts tokens (tokenizers, batched), the second
writes the texts of the chosen documents; neither holds the whole corpus in memory.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from qwen3_recipe.compiler.lowerers import load_lowered
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.mixture import Doc, order_for_training, plan_mixture
from qwen3_recipe.data.stages import Call, Stage
from qwen3_recipe.provenance.recorder import ShardRecorder

PACK_SEPARATOR = "\n\n"


def curated_files(plan: Plan, inputs: list[str]) -> list[Path]:
    return sorted(f for dep in inputs for f in (plan.run_dir / "jobs" / dep / "output").glob("*.jsonl.gz"))


def read_docs(files: list[Path], sources: set[str] | None) -> Iterator[dict]:
    """The documents of `sources` (None: of every source)."""
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                if sources is None or doc.get("metadata", {}).get("source") in sources:
                    yield doc


def _group(doc: dict, pack_related: str | None) -> str | None:
    """The packing key: the document's URL or repository ("source" packing groups by source alone)."""
    return doc.get("metadata", {}).get(pack_related) if pack_related in ("url", "repo") else None


def count_tokens(files: list[Path], keys: list, tokenizer, pack_related: str | None) -> tuple[list[Doc], dict]:
    """The documents the mixture's weight keys take (recipe/slices.py: a document's `source` in the
    plan is the key it is drawn under), with their token counts; and each one's real source."""
    from qwen3_recipe.recipe.slices import assign
    docs, batch, source_of = [], [], {}
    wanted = None if any(k.source is None for k in keys) else {k.source for k in keys}

    def flush() -> None:
        for (doc, key), enc in zip(batch, tokenizer.encode_batch([d["text"] for d, _ in batch],
                                                                 add_special_tokens=False)):
            docs.append(Doc(doc["id"], key, len(enc.ids) + 1, _group(doc, pack_related)))
            source_of[doc["id"]] = doc["metadata"]["source"]
        batch.clear()

    for doc in read_docs(files, wanted):
        key = assign(doc["metadata"]["source"], doc["metadata"].get("labels") or {}, keys)
        if key is not None:
            batch.append((doc, key))
        if len(batch) == 1024:
            flush()
    flush()
    return docs, source_of


def mix_stages(p: PlannedJob, plan: Plan) -> list[Stage]:
    """The mixture plan (one process: it sees every document), then one tokenize task."""
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    folder, lowered = plan.run_dir / p.job.dir, load_lowered(p, plan)
    tok = lowered["tokenize"]
    return [
        Stage("mixture", call=Call(write_mixture, p, plan)),
        Stage("tokenize", [
            JsonlReader(str(_ordered(folder).parent), id_key="id", text_key="text"),
            DocumentTokenizer(str(folder / "tokens"), tokenizer_name_or_path=tok["tokenizer"],
                              eos_token=tok["eos_token"], shuffle_documents=False, save_filename=tok["save_filename"],
                              local_working_dir=str(folder / "tokenize-work")),
        ], 1, executor=lowered["executor"]),
    ]


def run_mix(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.data.logs import quiet_datatrove
    from qwen3_recipe.launch.executors import run_stages
    from qwen3_recipe.provenance.database import build_database

    quiet_datatrove()
    run_stages(plan, p, mix_stages(p, plan))
    build_database(plan.run_dir)


def _ordered(folder: Path) -> Path:
    return folder / "ordered" / "00000.jsonl.gz"


def write_mixture(p: PlannedJob, plan: Plan) -> None:
    """Count tokens, plan the mixture, refuse contamination, write the documents in training order
    and the mixture's provenance."""
    from tokenizers import Tokenizer

    m = load_lowered(p, plan)
    folder = plan.run_dir / p.job.dir
    files = curated_files(plan, m["inputs"])
    tokenizer = Tokenizer.from_file(m["tokenize"]["tokenizer"])
    from qwen3_recipe.recipe.slices import parse_keys
    weights = dict(m["weights"])  # [key, share] pairs, in the recipe's order
    docs, source_of = count_tokens(files, parse_keys(weights), tokenizer, m["pack_related"])
    buckets = [tuple(b) for b in m["length_buckets"]] if m["length_buckets"] else None
    # at least the target is mixed (data/mixture.py fills each share to its target or above)
    mplan = plan_mixture(m["stage"], docs, weights, m["tokens"], m["max_repetition"], seed=m["seed"],
                         length_buckets=buckets, pack_related=m["pack_related"],
                         pack_target_tokens=m["pack_target_tokens"])
    _record(folder, p, mplan, source_of)  # before a refusal, so that its shortfall can be queried
    refuse_short(plan, m, mplan)
    refuse_contaminated(plan, m, mplan)
    order = order_for_training(mplan, m["seed"])
    _write_ordered(files, mplan, order, _ordered(folder), set(source_of.values()))


def refuse_short(plan: Plan, m: dict, mplan) -> None:
    """A source that cannot fill its share within max_repetition stops the stage here: training on
    would loop the mixed tokens, repeating documents past the cap."""
    if not mplan.shortfalls:
        return
    from qwen3_recipe.errors import Problem, RecipeError
    from qwen3_recipe.provenance.database import build_database
    build_database(plan.run_dir)  # the mixture's rows, shortfall included, are queryable
    need = {src: round(mplan.declared[src] * m["tokens"]) for src in mplan.shortfalls}
    short = ", ".join(f"{src} {need[src]:,} tokens, has {need[src] - n:,} at the cap"
                      for src, n in sorted(mplan.shortfalls.items()))
    path = ("data", "mixtures", m["mixture_name"], "max_repetition")
    raise RecipeError([Problem(f"stage '{mplan.stage}' needs more than its sources hold at max_repetition "
                               f"{m['max_repetition']:g} ({short})", ".".join(path), plan.loaded.raw.smap.find(path),
                               "lower the stage's tokens, raise max_repetition, reweight or add data")])


def refuse_contaminated(plan: Plan, m: dict, mplan) -> None:
    """The contamination gate (provenance/gate.py) on the exact documents the stage would train on."""
    import duckdb

    from qwen3_recipe.errors import Problem, RecipeError
    from qwen3_recipe.provenance.database import DB_NAME
    from qwen3_recipe.provenance.gate import THRESHOLD_KEY, flagged_documents, refusal_text
    gate = m["gate"]
    db = plan.run_dir / DB_NAME
    if gate["allow"] or not db.exists() or not mplan.assignments:
        return
    with duckdb.connect(str(db), read_only=True) as con:
        flagged = flagged_documents(con)
    used = {a.doc_id for a in mplan.assignments}
    share = len(used & flagged) / len(used)
    if share > gate["threshold"]:
        raise RecipeError([Problem(refusal_text(m["stage"], share, len(used), gate["threshold"]), THRESHOLD_KEY,
                                   plan.loaded.raw.smap.find(tuple(THRESHOLD_KEY.split("."))))])


def _write_ordered(files: list[Path], mplan, order: list[tuple[str, int]], target: Path, sources: set[str]) -> None:
    members = {a.doc_id for a in mplan.assignments}
    texts: dict[str, tuple[str, str]] = {}
    for doc in read_docs(files, sources):
        if doc["id"] in members:
            texts[doc["id"]] = (doc["text"], doc["metadata"]["source"])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        for unit, repetition in order:
            ids = mplan.packs.get(unit, (unit,))
            text = PACK_SEPARATOR.join(texts[i][0] for i in ids)
            out.write(json.dumps({"id": f"{unit}#{repetition}", "text": text,
                                  "metadata": {"source": texts[ids[0]][1], "unit": unit,
                                               "repetition": repetition}}) + "\n")
    tmp.replace(target)


def _record(folder: Path, p: PlannedJob, mplan, source_of: dict[str, str]) -> None:
    """mixture: each document under its source and the weight key it was drawn under;
    mixture_targets: per weight key (`source` holds the key: a source or a slice)."""
    rec = ShardRecorder(folder / "provenance", p.job.name, "mix", 0)
    for a in mplan.assignments:
        rec.add("mixture", stage=mplan.stage, source=source_of[a.doc_id], weight_key=a.source, doc_id=a.doc_id,
                tokens=a.tokens, repetitions=a.repetitions, packed_into=a.packed_into)
    for source, share in mplan.declared.items():
        rec.add("mixture_targets", stage=mplan.stage, source=source, declared_share=share,
                realized_share=mplan.realized.get(source, 0.0), budget_tokens=round(share * mplan.tokens),
                shortfall_tokens=mplan.shortfalls.get(source, 0))
    rec.close()
