"""Readers that account for every input record: each document gets a `documents` row, and
records datatrove would skip with a log line (malformed JSON, empty text) become drops with a
reason at step 0 ("read"), so the funnel starts from what was really in the files."""

from __future__ import annotations

import hashlib
import json

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader

from qwen3_recipe.data.duplicate_ids import later_rows
from qwen3_recipe.provenance.recorder import ShardRecorder

READ_STEP = "read"


def text_hash(text: str, encoded: bytes | None = None) -> str:
    data = encoded if encoded is not None else text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class SourceReadError(RuntimeError):
    """A source file that cannot be read (truncated archive, bad encoding, I/O error): one line
    naming the file and where in it; the traceback is in the task's log."""


def located(records, folder, filepath: str, where=None):
    """`records` of `filepath`, a failure to read them re-raised naming the file (and `where()`)."""
    try:
        yield from records
    except SourceReadError:
        raise
    except (OSError, EOFError, ValueError, UnicodeError) as exc:  # gzip/zstd/arrow errors are among these
        path = folder.resolve_paths(filepath) if hasattr(folder, "resolve_paths") else filepath
        at = f" at {where()}" if where else ""
        raise SourceReadError(f"cannot read {path}{at}: {type(exc).__name__}: {exc}") from exc


class _Accounting:
    """Shared bookkeeping of the read step. With `scan_dir` set, only each document's id and place
    are recorded there (the id scan before a `keep_first`/`suffix` read); with `duplicates` set, the
    later rows of repeated ids found by that scan are dropped or renamed (data/duplicate_ids.py)."""

    source: str
    job: str
    prov_dir: str
    scan_dir: str | None = None
    duplicates: str | None = None

    def _open(self, rank: int) -> None:
        self._rec = ShardRecorder(self.scan_dir or self.prov_dir, self.job, f"00-{READ_STEP}", rank)
        self._counts = {"kept": 0, "dropped": 0, "modified": 0}
        self._later = later_rows(self.duplicates) if self.duplicates and not self.scan_dir else {}
        self._rows: dict[str, int] = {}

    def _document(self, doc_id: str, file: str, offset: int, text: str, drop: str | None = None) -> str | None:
        """Records a read document and its fate at the read step (`drop`: the reason it cannot be
        read as one); returns its id in the run, or None when it goes no further."""
        if self.scan_dir:
            self._rec.add("documents", source=self.source, doc_id=doc_id, file=file, offset=offset)
            return None if drop else doc_id
        run_id, action = self._later.get((file, offset), (doc_id, None))
        encoded = text.encode("utf-8", "surrogatepass")  # once per document: size and hash
        self._rec.add("documents", source=self.source, doc_id=run_id, file=file, offset=offset,
                      bytes=len(encoded), text_hash=text_hash(text, encoded))
        if drop:
            self._decide(run_id, "dropped", drop)
            return None
        if action is None:
            self._decide(run_id, "kept")
            return run_id
        # a later row of a repeated id: dropped or renamed, as declared, with the id it had
        self._decide(run_id, action, "duplicate_id", json.dumps({"id": doc_id}))
        return None if action == "dropped" else run_id

    def _decide(self, doc_id: str, decision: str, reason: str | None = None, details: str | None = None) -> None:
        self._counts[decision] += 1
        if decision != "kept":  # kept rows at the read step are implied by `documents`
            self._rec.add("decisions", step_index=0, step=READ_STEP, source=self.source, doc_id=doc_id,
                          decision=decision, reason=reason, details=details)

    def _close(self) -> None:
        if not self.scan_dir:
            self._rec.add("step_counts", step_index=0, step=READ_STEP, source=self.source,
                          documents_in=sum(self._counts.values()), **self._counts)
        self._rec.close()


class JsonlSourceReader(_Accounting, JsonlReader):
    """datatrove's JsonlReader, with malformed lines and empty documents recorded as drops."""

    name = "🐿 Jsonl (accounted)"

    def __init__(self, data_folder, source: str, job: str, prov_dir: str, scan_dir: str | None = None,
                 duplicates: str | None = None, limit: int = -1, **kwargs) -> None:
        # the limit counts records read (per task), not documents passed on: the id scan and the
        # read that drops repeated ids (keep_first) then see the same rows
        super().__init__(data_folder, limit=-1, **kwargs)
        self.row_limit = limit
        self.source, self.job, self.prov_dir = source, job, prov_dir
        self.scan_dir, self.duplicates = scan_dir, duplicates

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._open(rank)
        self._read = 0
        yield from super().run(data, rank, world_size)
        self._close()

    def read_file(self, filepath: str):
        read = self._records(filepath)
        # the line being read when the file failed: the one after the last line read whole
        yield from located(read, self.data_folder, filepath, lambda: f"line {self._whole + 1}")

    def _records(self, filepath: str):
        import orjson

        self._whole = 0  # lines read whole
        with self.data_folder.open(filepath, "rb", compression=self.compression) as fh:
            for line_no, raw in enumerate(fh):
                self._whole = line_no + 1
                if not raw.strip():
                    continue  # blank lines are not records
                if 0 < self.row_limit <= self._read:
                    return
                self._read += 1
                doc_id = f"{self.source}/{filepath}:{line_no}"
                try:
                    record = orjson.loads(raw)
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                except ValueError:
                    self._document(doc_id, filepath, line_no, raw.decode("utf-8", "replace"), drop="malformed")
                    self.stat_update("malformed")
                    continue
                with self.track_time():
                    document = self._to_document(record, filepath, line_no, doc_id)
                if document is not None:
                    yield document

    def _to_document(self, record: dict, filepath: str, line_no: int, fallback_id: str) -> Document | None:
        text = record.get(self.text_key)
        raw_id = record.get(self.id_key)
        doc_id = f"{self.source}/{raw_id}" if raw_id is not None else fallback_id
        if not isinstance(text, str) or not text:
            self._document(doc_id, filepath, line_no, "" if text is None else str(text),
                           drop="empty" if not text else "text_not_string")
            return None
        doc_id = self._document(doc_id, filepath, line_no, text)
        if doc_id is None:
            return None
        record = dict(record)
        record[self.id_key] = doc_id
        document = self.get_document_from_dict(record, filepath, line_no)
        document.metadata.update(source=self.source, file=filepath, offset=line_no)
        return document


class LocatedParquetReader(ParquetReader):
    """datatrove's ParquetReader; a file it cannot read is named in one line."""

    def read_file(self, filepath: str):
        yield from located(super().read_file(filepath), self.data_folder, filepath)


class AccountDocuments(_Accounting, PipelineStep):
    """After any other datatrove reader (Parquet, HF datasets): tag and record each document."""

    name = "📒 account documents"
    type = "🔍 - TRACED"

    def __init__(self, source: str, job: str, prov_dir: str, scan_dir: str | None = None,
                 duplicates: str | None = None) -> None:
        super().__init__()
        self.source, self.job, self.prov_dir = source, job, prov_dir
        self.scan_dir, self.duplicates = scan_dir, duplicates

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._open(rank)
        for doc in data:
            # readers without files (HF datasets) shard rows by task: the task is the place
            file = str(doc.metadata.get("file_path") or f"task {rank}")
            row = self._rows[file] = self._rows.get(file, -1) + 1  # the row within its file, for messages
            run_id = self._document(f"{self.source}/{doc.id}", file, row, doc.text)
            if run_id is not None:
                doc.id = run_id
                doc.metadata.setdefault("source", self.source)
                yield doc
        self._close()
