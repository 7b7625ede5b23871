"""Reading and publishing a corpus of (source, file) pairs, for the jobs that process the curated
documents after the source jobs (data.dedup, quality.label): a listing pins which files a stage
reads, one file per task; publishing builds the job's output folder that later jobs read."""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.readers import JsonlReader

Files = list[tuple[str, Path]]  # (source, file): one source per file, one file per task


def write_listing(files: list[Path], root: Path, listing: Path) -> None:
    """The paths file `listing_reader` reads: `files`, one per line, relative to `root`."""
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{f.relative_to(root)}\n" for f in files))


def listing_reader(root: Path, listing: Path) -> JsonlReader:
    """Read exactly the listed files (a paths file keeps task -> file assignment identical across
    stages; read when a task starts, so it may be written after the pipeline is built)."""
    return JsonlReader(str(root), paths_file=str(listing), id_key="id", text_key="text")


def publish_files(files: Files, out: Path) -> None:
    """The job's output folder: the final file of every source (hard links, copies across devices),
    named <source>-<index>.jsonl.gz; whatever the folder held before goes."""
    import os
    import shutil
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for i, (source, f) in enumerate(files):
        target = out / f"{source}-{i:05d}.jsonl.gz"
        try:
            os.link(f, target)
        except OSError:
            shutil.copy2(f, target)
