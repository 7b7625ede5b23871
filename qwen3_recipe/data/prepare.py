"""`data.<source>` jobs: read one source, apply its quality filters and decontamination, write
the kept documents (JSONL) with per-document provenance. The pipeline is built from the job's
compiled artifact (data/prepare_plan.py), never from the recipe."""

from __future__ import annotations

from typing import Any

from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter

from qwen3_recipe.data.filters import build_block
from qwen3_recipe.data.readers import AccountDocuments, JsonlSourceReader, LocatedParquetReader
from qwen3_recipe.data.trace import Traced
from qwen3_recipe.data.wordcache import CachingWordTokenizer


def reader_steps(lowered: dict[str, Any], job: str, scan: bool = False) -> list[PipelineStep]:
    """The source's reader with its accounting; `scan`: the id scan before a keep_first/suffix read
    (data/duplicate_ids.py), which records ids and places only."""
    r, source, prov = lowered["reader"], lowered["source"], lowered["provenance"]["folder"]
    keys = {"text_key": r["text_key"], "id_key": r["id_key"], "limit": r["limit"]}
    ids = {"scan_dir": r["ids_scan"]} if scan else {"duplicates": r.get("duplicates")}
    if r["format"] == "jsonl":
        return [JsonlSourceReader(r["data_folder"], source=source, job=job, prov_dir=prov,
                                  glob_pattern=r["glob_pattern"], **ids, **keys)]
    if r["format"] == "synth":
        from qwen3_recipe.data.synth_source import SynthDatasetReader
        step = SynthDatasetReader(r["data_folder"], render=r["render"], synth_job=r["synth_job"],
                                  glob_pattern=r["glob_pattern"], **keys)
    elif r["format"] == "parquet":
        step = LocatedParquetReader(r["data_folder"], glob_pattern=r["glob_pattern"], **keys)
    else:
        from datatrove.pipeline.readers import HuggingFaceDatasetReader
        step = HuggingFaceDatasetReader(r["dataset"], r["dataset_options"], streaming=True, **keys)
    return [step, AccountDocuments(source, job, prov, **ids)]


def prepare_pipeline(lowered: dict[str, Any], job: str, decont_step: PipelineStep | None = None) -> list[PipelineStep]:
    """The datatrove pipeline of a compiled data job (`decont_step`: its decontamination filter,
    built by the runner once the run's n-gram index exists)."""
    prov = lowered["provenance"]
    steps = reader_steps(lowered, job)
    words = CachingWordTokenizer("en")  # one tokenization per document for all blocks
    for block in lowered["filters"]:
        steps.append(Traced(build_block(block, words), block["index"], block["name"], job, prov["folder"],
                            kept_sample_rate=prov["kept_sample_rate"]))
    if decont_step is not None:
        steps.append(Traced(decont_step, len(lowered["filters"]) + 1, "decontamination", job, prov["folder"],
                            kept_sample_rate=prov["kept_sample_rate"], evidence="contamination"))
    w = lowered["writer"]
    steps.append(JsonlWriter(w["output_folder"], output_filename=w["output_filename"]))
    return steps
