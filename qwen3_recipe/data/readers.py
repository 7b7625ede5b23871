"""Readers that account for every input record: each document gets a `documents` row, and
records datatrove would skip with a log line (malformed JSON, empty text) become drops with a
reason at step 0 ("read"), so the funnel starts from what was really in the files."""

from __future__ import annotations

import hashlib

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader

from qwen3_recipe.provenance.recorder import ShardRecorder

READ_STEP = "read"


def text_hash(text: str, encoded: bytes | None = None) -> str:
    data = encoded if encoded is not None else text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class _Accounting:
    """Shared bookkeeping of the read step."""

    source: str
    job: str
    prov_dir: str

    def _open(self, rank: int) -> None:
        self._rec = ShardRecorder(self.prov_dir, self.job, f"00-{READ_STEP}", rank)
        self._counts = {"kept": 0, "dropped": 0, "modified": 0}

    def _document(self, doc_id: str, file: str, offset: int, text: str) -> None:
        encoded = text.encode("utf-8", "surrogatepass")  # once per document: size and hash
        self._rec.add("documents", source=self.source, doc_id=doc_id, file=file, offset=offset,
                      bytes=len(encoded), text_hash=text_hash(text, encoded))

    def _decide(self, doc_id: str, decision: str, reason: str | None = None) -> None:
        self._counts[decision] += 1
        if decision == "dropped":  # kept rows at the read step are implied by `documents`
            self._rec.add("decisions", step_index=0, step=READ_STEP, source=self.source, doc_id=doc_id,
                          decision=decision, reason=reason, details=None)

    def _close(self) -> None:
        self._rec.add("step_counts", step_index=0, step=READ_STEP, source=self.source,
                      documents_in=sum(self._counts.values()), **self._counts)
        self._rec.close()


class JsonlSourceReader(_Accounting, JsonlReader):
    """datatrove's JsonlReader, with malformed lines and empty documents recorded as drops."""

    name = "🐿 Jsonl (accounted)"

    def __init__(self, data_folder, source: str, job: str, prov_dir: str, **kwargs) -> None:
        super().__init__(data_folder, **kwargs)
        self.source, self.job, self.prov_dir = source, job, prov_dir

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._open(rank)
        yield from super().run(data, rank, world_size)
        self._close()

    def read_file(self, filepath: str):
        import orjson

        with self.data_folder.open(filepath, "rb", compression=self.compression) as fh:
            for line_no, raw in enumerate(fh):
                doc_id = f"{self.source}/{filepath}:{line_no}"
                try:
                    record = orjson.loads(raw)
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                except ValueError:
                    if not raw.strip():
                        continue  # blank lines are not records
                    text = raw.decode("utf-8", "replace")
                    self._document(doc_id, filepath, line_no, text)
                    self._decide(doc_id, "dropped", "malformed")
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
            self._document(doc_id, filepath, line_no, "" if text is None else str(text))
            self._decide(doc_id, "dropped", "empty" if not text else "text_not_string")
            return None
        self._document(doc_id, filepath, line_no, text)
        self._decide(doc_id, "kept")
        record = dict(record)
        record[self.id_key] = doc_id
        document = self.get_document_from_dict(record, filepath, line_no)
        document.metadata.update(source=self.source, file=filepath, offset=line_no)
        return document


class AccountDocuments(_Accounting, PipelineStep):
    """After any other datatrove reader (Parquet, HF datasets): tag and record each document."""

    name = "📒 account documents"
    type = "🔍 - TRACED"

    def __init__(self, source: str, job: str, prov_dir: str) -> None:
        super().__init__()
        self.source, self.job, self.prov_dir = source, job, prov_dir

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._open(rank)
        for doc in data:
            doc.id = f"{self.source}/{doc.id}"
            doc.metadata.setdefault("source", self.source)
            self._document(doc.id, str(doc.metadata.get("file_path", "")), -1, doc.text)
            self._decide(doc.id, "kept")
            yield doc
        self._close()
